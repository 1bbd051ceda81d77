from sensor_manager.cli import main

main()
