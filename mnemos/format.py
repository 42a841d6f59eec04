"""On-disk constants and limits. FORMAT.md is the normative description of each.

Everything on disk is little-endian. Names carry their unit last.
"""

from __future__ import annotations

import struct

# FORMAT.md "Version log". A new database is created at version 1 and moves to 2 when it
# first logs an event that only version 2 defines (a capacity rule, an eviction, a recall),
# so databases that never use them stay readable by version-1 readers.
FORMAT_VERSION = 2  # the newest this code reads and writes
CREATED_VERSION = 1
V2_EVENTS = frozenset({"capacity", "evict", "recall"})
POLICIES = ("importance-then-age", "least-recently-recalled")

# FORMAT.md "The MNEMOS file"
DB_MAGIC = b"MNEMOSDB"
DB_FILE = "MNEMOS"
DB_HEADER = struct.Struct("<8sII")  # magic, format_version, crc32 of the first 12 bytes
LOCK_FILE = "LOCK"
WAL_DIR = "wal"
SNAPSHOT_DIR = "snapshots"
TMP_SUFFIX = ".tmp"

# FORMAT.md "Log segments"
WAL_MAGIC = b"MNEMOSWL"
WAL_SUFFIX = ".wal"
SEGMENT_HEADER = struct.Struct("<8sIIQII")  # magic, version, reserved, first_seq, prev_crc, crc
SEGMENT_HEADER_BYTES = SEGMENT_HEADER.size  # 32
# crc, length, seq, prev_crc, txn_index, txn_count, reserved
RECORD_HEADER = struct.Struct("<IIQIIII")
RECORD_HEADER_BYTES = RECORD_HEADER.size  # 32

# FORMAT.md "Snapshots"
SNAP_MAGIC = b"MNEMSNAP"
SNAP_SUFFIX = ".snap"
SNAP_HEADER = struct.Struct("<8sIIQII")  # magic, version, sections, seq, last_crc, crc
SNAP_HEADER_BYTES = SNAP_HEADER.size  # 32
SNAP_SECTION = struct.Struct("<IIQQQII")  # kind, codec, offset, stored, raw, crc, reserved
SNAP_SECTION_BYTES = SNAP_SECTION.size  # 40
SNAP_ALIGN_BYTES = 64
SECTION_STATE = 1
SECTION_VECTORS = 2
SECTION_NORMS = 3
SECTION_LEXICAL = 4
SECTION_ANN = 5
SECTION_ANN_GRAPH = 6  # its CRC is checked at first use, not at open
CODEC_RAW = 0
CODEC_ZSTD = 1

# FORMAT.md "Limits"
EVENT_BYTES_MAX = 8 * 1024 * 1024
TEXT_BYTES_MAX = 1024 * 1024
METADATA_BYTES_MAX = 1024 * 1024
DIM_MAX = 4096
ID_BYTES_MAX = 256
NAMESPACE_BYTES_MAX = 256
RELATION_BYTES_MAX = 256
BATCH_ITEMS_MAX = 1_000_000
CAPACITY_MAX = 2**63 - 1  # a capacity rule's max_entries (an i64 in the event)
TXN_BYTES_MAX = 256 * 1024 * 1024  # payload bytes of one transaction (one remember_many)

KINDS = ("episodic", "semantic", "procedural")
DEFAULT_NAMESPACE = "default"
DEFAULT_IMPORTANCE = 0.5


def segment_name(first_seq: int) -> str:
    return f"{first_seq:020d}{WAL_SUFFIX}"


def snapshot_name(seq: int) -> str:
    return f"{seq:020d}{SNAP_SUFFIX}"


def parse_numbered(name: str, suffix: str) -> int | None:
    """The number in a segment or snapshot file name, or None for any other name."""
    stem = name[: -len(suffix)] if name.endswith(suffix) else ""
    if len(stem) != 20 or not stem.isdigit():
        return None
    return int(stem)
