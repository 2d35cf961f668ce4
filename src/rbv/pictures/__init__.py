"""What rbv draws from catalogued photos: square face crops and contact sheets."""
