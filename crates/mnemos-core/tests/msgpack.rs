//! `msgpack::Reader` splits every format of the MessagePack specification into the tokens
//! `msgpack.unpackb` would read, and stops with `Malformed` at the start of a token the input
//! cuts short. The byte strings below are what Python's `msgpack.packb` writes for each value.

use mnemos_core::msgpack::{Malformed, Reader, Token};

fn tokens(data: &[u8]) -> Result<Vec<Token<'_>>, Malformed> {
    let mut reader = Reader::new(data);
    let mut out = Vec::new();
    while reader.remaining() > 0 {
        out.push(reader.next_token()?);
    }
    Ok(out)
}

fn one(data: &[u8]) -> Token<'_> {
    let all = tokens(data).expect("well-formed");
    assert_eq!(all.len(), 1, "{data:?}");
    all[0]
}

#[test]
fn every_format_reads_as_its_token() {
    assert_eq!(one(b"\xc0"), Token::Nil);
    assert_eq!(one(b"\xc2"), Token::Bool(false));
    assert_eq!(one(b"\xc3"), Token::Bool(true));
    // Integers: fixints, then each width, signed and unsigned.
    assert_eq!(one(b"\x00"), Token::UInt(0));
    assert_eq!(one(b"\x7f"), Token::UInt(127));
    assert_eq!(one(b"\xff"), Token::Int(-1));
    assert_eq!(one(b"\xe0"), Token::Int(-32));
    assert_eq!(one(b"\xcc\xff"), Token::UInt(255));
    assert_eq!(one(b"\xcd\x01\x00"), Token::UInt(256));
    assert_eq!(one(b"\xce\x00\x01\x00\x00"), Token::UInt(65_536));
    assert_eq!(
        one(b"\xcf\xff\xff\xff\xff\xff\xff\xff\xff"),
        Token::UInt(u64::MAX)
    );
    assert_eq!(one(b"\xd0\xdf"), Token::Int(-33));
    assert_eq!(one(b"\xd1\xff\x7f"), Token::Int(-129));
    assert_eq!(one(b"\xd2\xff\xff\x7f\xff"), Token::Int(-32_769));
    assert_eq!(
        one(b"\xd3\x80\x00\x00\x00\x00\x00\x00\x00"),
        Token::Int(i64::MIN)
    );
    // Floats, big-endian: 1.5 as float 32 and float 64.
    assert_eq!(one(b"\xca\x3f\xc0\x00\x00"), Token::F32(1.5));
    assert_eq!(
        one(b"\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00"),
        Token::F64(1.5)
    );
    // Strings and binaries of each length width.
    assert_eq!(one(b"\xa3abc"), Token::Str(b"abc"));
    assert_eq!(one(b"\xa0"), Token::Str(b""));
    let long: Vec<u8> = [b"\xd9\x20".as_slice(), &[b'x'; 32]].concat();
    assert_eq!(one(&long), Token::Str(&[b'x'; 32]));
    let s16: Vec<u8> = [b"\xda\x01\x00".as_slice(), &[b'y'; 256]].concat();
    assert_eq!(one(&s16), Token::Str(&[b'y'; 256]));
    let s32: Vec<u8> = [b"\xdb\x00\x01\x00\x00".as_slice(), &vec![b'z'; 65_536]].concat();
    assert_eq!(one(&s32), Token::Str(&vec![b'z'; 65_536]));
    assert_eq!(one(b"\xc4\x02\x01\x02"), Token::Bin(&[1, 2]));
    let b16: Vec<u8> = [b"\xc5\x01\x00".as_slice(), &[7; 256]].concat();
    assert_eq!(one(&b16), Token::Bin(&[7; 256]));
    assert_eq!(one(b"\xc6\x00\x00\x00\x01\x09"), Token::Bin(&[9]));
    // Ext values, fixed and sized, and the timestamp extension (-1).
    assert_eq!(one(b"\xd4\x05\x01"), Token::Ext(5, &[1]));
    assert_eq!(one(b"\xd5\x05\x01\x02"), Token::Ext(5, &[1, 2]));
    assert_eq!(
        one(b"\xd6\xff\x00\x00\x00\x01"),
        Token::Ext(-1, &[0, 0, 0, 1])
    );
    assert_eq!(
        one(&[&b"\xd7\x01"[..], &[0; 8]].concat()),
        Token::Ext(1, &[0; 8])
    );
    assert_eq!(
        one(&[&b"\xd8\x01"[..], &[0; 16]].concat()),
        Token::Ext(1, &[0; 16])
    );
    assert_eq!(one(b"\xc7\x03\x02abc"), Token::Ext(2, b"abc"));
    assert_eq!(one(b"\xc8\x00\x01\x02a"), Token::Ext(2, b"a"));
    assert_eq!(one(b"\xc9\x00\x00\x00\x01\x02a"), Token::Ext(2, b"a"));
}

#[test]
fn containers_give_their_length_then_their_items() {
    // {"t": "remember", "v": [1, -1]}
    assert_eq!(
        tokens(b"\x82\xa1t\xa8remember\xa1v\x92\x01\xff").unwrap(),
        vec![
            Token::Map(2),
            Token::Str(b"t"),
            Token::Str(b"remember"),
            Token::Str(b"v"),
            Token::Array(2),
            Token::UInt(1),
            Token::Int(-1),
        ]
    );
    assert_eq!(one(b"\xdc\x01\x00"), Token::Array(256));
    assert_eq!(one(b"\xdd\x00\x01\x00\x00"), Token::Array(65_536));
    assert_eq!(one(b"\xde\x00\x10"), Token::Map(16));
    assert_eq!(one(b"\xdf\xff\xff\xff\xff"), Token::Map(u32::MAX));
}

#[test]
fn a_cut_token_is_malformed_at_its_start_and_the_reader_stays_there() {
    // [256, "abc"]: tokens at offsets 0, 1 and 4, ending at 1, 4 and 8.
    let whole: &[u8] = b"\x92\xcd\x01\x00\xa3abc";
    let spans = [(0, 1), (1, 4), (4, 8)];
    assert_eq!(tokens(whole).unwrap().len(), 3);
    for cut in 0..whole.len() {
        let mut reader = Reader::new(&whole[..cut]);
        let (start, _) = *spans.iter().find(|(_, end)| *end > cut).unwrap();
        for _ in spans.iter().take_while(|(_, end)| *end <= cut) {
            reader.next_token().unwrap();
        }
        assert_eq!(
            reader.next_token(),
            Err(Malformed { offset: start }),
            "cut at {cut}"
        );
        assert_eq!(reader.remaining(), cut - start, "cut at {cut}");
    }
}

#[test]
fn lengths_past_the_input_are_malformed_not_allocations() {
    for data in [
        &b"\xdb\xff\xff\xff\xff"[..],
        b"\xc6\xff\xff\xff\xff",
        b"\xc9\xff\xff\xff\xff\x01",
        b"\xd8\x01",
    ] {
        assert_eq!(Reader::new(data).next_token(), Err(Malformed { offset: 0 }));
    }
}

#[test]
fn the_unused_marker_and_empty_input_are_malformed() {
    assert_eq!(
        Reader::new(b"\xc1").next_token(),
        Err(Malformed { offset: 0 })
    );
    assert_eq!(Reader::new(b"").next_token(), Err(Malformed { offset: 0 }));
}
