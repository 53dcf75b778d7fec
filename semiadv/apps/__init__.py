"""The binaries: each `*_main.py` turns its flags into a config and calls the library."""
