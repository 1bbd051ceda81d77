"""The basics sensor_manager and uploader share: errors and exit codes, names, status files, strict models.

Imports nothing from either package, so both can import it and neither imports the other back.
"""
