"""rbv: find every face in a photo library and group faces into persons."""

__version__ = "0.1.0"
