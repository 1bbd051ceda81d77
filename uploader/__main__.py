"""python -m uploader"""
import sys

from uploader.cli import main

sys.exit(main())
