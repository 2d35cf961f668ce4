"""XMP sidecars as other programs write them, for tests of `rbv import-xmp`."""

from __future__ import annotations


def mwg_sidecar(dims: tuple[str, str] | None,
                regions: list[tuple[str, tuple[str, ...]]]) -> bytes:
    """An XMP sidecar with MWG face regions (name, normalised centre x, y, width,
    height), numbers written as given (exiftool would refuse to write ``inf``; a broken
    program or a hand edit does not); ``dims``: the AppliedToDimensions (None: none, as
    digiKam writes some)."""
    items = "".join(
        f'<rdf:li><rdf:Description mwg-rs:Name="{name}" mwg-rs:Type="Face"><mwg-rs:Area '
        f'stArea:x="{x}" stArea:y="{y}" stArea:w="{w}" stArea:h="{h}" '
        'stArea:unit="normalized"/></rdf:Description></rdf:li>'
        for name, (x, y, w, h) in regions)
    return (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
        'rdf:about="" xmlns:mwg-rs="http://www.metadataworkinggroup.com/schemas/regions/" '
        'xmlns:stArea="http://ns.adobe.com/xmp/sType/Area#" '
        'xmlns:stDim="http://ns.adobe.com/xap/1.0/sType/Dimensions#">'
        '<mwg-rs:Regions rdf:parseType="Resource">'
        + ('' if dims is None else '<mwg-rs:AppliedToDimensions '
           f'stDim:w="{dims[0]}" stDim:h="{dims[1]}" stDim:unit="pixel"/>')
        + '<mwg-rs:RegionList>'
        f'<rdf:Bag>{items}</rdf:Bag></mwg-rs:RegionList></mwg-rs:Regions>'
        '</rdf:Description></rdf:RDF></x:xmpmeta>').encode()
