"""The user's files rbv reads and writes beside the photos: XMP face regions (sidecars
and embedded), photo backups before a rewrite, atomic writes, and albums of photos with
their sidecars."""
