//! `crc32` must equal Python's `zlib.crc32(data, initial)`, the reference implementation, for
//! every input and in particular when checksums are chained through `initial`.

use mnemos_core::crc32;

#[test]
fn check_value_of_the_crc32_iso_hdlc_catalogue() {
    // The "check" value of CRC-32/ISO-HDLC in the CRC catalogue.
    assert_eq!(crc32(b"123456789", 0), 0xCBF4_3926);
}

#[test]
fn known_vectors_match_zlib() {
    // Values printed by CPython's `zlib.crc32`.
    assert_eq!(crc32(b"a", 0), 0xE8B7_BE43);
    assert_eq!(crc32(b"abc", 0), 0x3524_41C2);
    assert_eq!(
        crc32(b"The quick brown fox jumps over the lazy dog", 0),
        0x414F_A339
    );
    assert_eq!(crc32(&[0u8; 32], 0), 0x190A_55AD);
    assert_eq!(crc32(b"bc", 5), 0xBFDE_DF7D);
}

#[test]
fn empty_input_returns_initial() {
    for initial in [0, 1, 0xCBF4_3926, u32::MAX] {
        assert_eq!(crc32(b"", initial), initial);
    }
}

#[test]
fn chaining_equals_hashing_the_concatenation() {
    let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let whole = crc32(&data, 0);
    for split in [0, 1, 7, 255, 4096, 9_999, 10_000] {
        let (a, b) = data.split_at(split);
        assert_eq!(crc32(b, crc32(a, 0)), whole, "split at {split}");
    }
}
