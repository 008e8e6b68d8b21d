"""Pure parsers and renderers of the file formats on a node: no I/O, no policy."""
