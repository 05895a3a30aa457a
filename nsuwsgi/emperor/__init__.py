"""The Emperor: governs a directory (or glob) of vassal config files, one instance per file.

`monitor` decides which vassal files exist and which of them changed.
"""
