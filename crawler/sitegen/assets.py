"""Bytes of the non-HTML files: small valid PNG maps, PDF reports, CSV census tables and JSON exports."""

import json
import struct
import zlib

from .plan import FileSpec
from .world import Entity, World

ROBOTS = """User-agent: *
Disallow: /private/
Disallow: /_truth/
Disallow: /_redirects.json
Disallow: /eval.jsonl
"""


def file_bytes(spec: FileSpec, world: World) -> bytes:
    """The content of one planned file."""
    entity = world.by_id[spec.entity]
    if spec.kind == "png":
        return png_map(entity.slug)
    if spec.kind == "pdf":
        return pdf_report(f"Annual report of the {entity.name}")
    if spec.kind == "csv":
        return census_csv(entity)
    return export_json(entity)


def png_map(seed_text: str, size: int = 32) -> bytes:
    """A grey-scale PNG whose pattern depends on `seed_text`."""
    salt = zlib.crc32(seed_text.encode())
    rows = b"".join(b"\x00" + bytes(((x * y + salt) >> (x % 5)) & 0xFF for x in range(size)) for y in range(size))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


def pdf_report(title: str) -> bytes:
    """A one-page PDF with a title line and a correct cross-reference table."""
    text = title.replace("\\", "").replace("(", "").replace(")", "")
    stream = f"BT /F1 14 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def census_csv(place: Entity) -> bytes:
    """Census counts for a place, ending at its current population (the value its article states)."""
    population = place.attrs["population"]
    lines = ["year,population"]
    for step, year in enumerate(range(1960, 2021, 10)):
        share = 0.7 + 0.05 * step if year < 2020 else 1.0
        lines.append(f"{year},{round(population * share)}")
    return ("\n".join(lines) + "\n").encode()


def export_json(entity: Entity) -> bytes:
    """A machine-readable record of one entity."""
    record = {"id": entity.id, "type": entity.type, "name": entity.name, "attributes": entity.attrs}
    return (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()
