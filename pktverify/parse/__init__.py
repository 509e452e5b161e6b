"""Text → model. Parsers are scapy-free and report bad input as InputError(file, line, text)."""
