//! A MessagePack reader that borrows from its input: the token stream of the event payloads
//! (FORMAT.md "Events"), for decoding whole segments in one call.
//!
//! Python reference: `msgpack.unpackb(payload, raw=False)`, which `mnemos.events.decode_event`
//! calls. The reader only splits bytes into tokens; turning them into values (and deciding
//! what a value may be) is the caller's. It reads every format of the specification; ext
//! and timestamp values come out as [`Token::Ext`], for the caller to refuse.

/// One MessagePack token. Strings and binaries borrow from the input; arrays and maps give
/// their length, and the tokens of their items follow (a map's as key, value, key, value).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Token<'a> {
    Nil,
    Bool(bool),
    /// Any signed encoding (negative fixint, int 8 to int 64).
    Int(i64),
    /// Any unsigned encoding (positive fixint, uint 8 to uint 64).
    UInt(u64),
    F32(f32),
    F64(f64),
    /// The bytes of a str: not checked to be UTF-8 here.
    Str(&'a [u8]),
    Bin(&'a [u8]),
    Array(u32),
    Map(u32),
    Ext(i8, &'a [u8]),
}

/// The input ended inside a token, or held the one byte the specification never uses (0xc1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed {
    /// Where the bad token starts.
    pub offset: usize,
}

/// Reads tokens one after another from `data`.
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    #[must_use]
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    /// Bytes not read yet.
    #[must_use]
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let bytes = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(bytes)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)
            .map(|b| b.try_into().expect("take returns N bytes"))
    }

    fn len_u8(&mut self) -> Option<usize> {
        self.array::<1>().map(|b| usize::from(b[0]))
    }

    fn len_u16(&mut self) -> Option<usize> {
        self.array::<2>()
            .map(|b| usize::from(u16::from_be_bytes(b)))
    }

    fn len_u32(&mut self) -> Option<usize> {
        self.array::<4>()
            .map(|b| usize::try_from(u32::from_be_bytes(b)).expect("usize holds u32"))
    }

    fn u32(&mut self) -> Option<u32> {
        self.array::<4>().map(u32::from_be_bytes)
    }

    /// The bytes after a length read by `len`.
    fn sized(&mut self, len: fn(&mut Self) -> Option<usize>) -> Option<&'a [u8]> {
        let n = len(self)?;
        self.take(n)
    }

    /// An ext value: a length read by `len`, its type, then its bytes.
    fn ext(&mut self, len: fn(&mut Self) -> Option<usize>) -> Option<Token<'a>> {
        let n = len(self)?;
        let kind = i8::from_be_bytes(self.array::<1>()?);
        Some(Token::Ext(kind, self.take(n)?))
    }

    /// The next token; at the end of the input, or inside a truncated token, `Malformed`
    /// (the reader then stays where the token began).
    pub fn next_token(&mut self) -> Result<Token<'a>, Malformed> {
        let start = self.pos;
        let token = self.read_token();
        token.ok_or_else(|| {
            self.pos = start;
            Malformed { offset: start }
        })
    }

    fn read_token(&mut self) -> Option<Token<'a>> {
        // MessagePack is big-endian throughout (its specification, "Formats").
        let marker = self.array::<1>()?[0];
        Some(match marker {
            0x00..=0x7f => Token::UInt(u64::from(marker)),
            0x80..=0x8f => Token::Map(u32::from(marker & 0x0f)),
            0x90..=0x9f => Token::Array(u32::from(marker & 0x0f)),
            0xa0..=0xbf => Token::Str(self.take(usize::from(marker & 0x1f))?),
            0xc0 => Token::Nil,
            0xc1 => return None,
            0xc2 => Token::Bool(false),
            0xc3 => Token::Bool(true),
            0xc4 => Token::Bin(self.sized(Self::len_u8)?),
            0xc5 => Token::Bin(self.sized(Self::len_u16)?),
            0xc6 => Token::Bin(self.sized(Self::len_u32)?),
            0xc7 => self.ext(Self::len_u8)?,
            0xc8 => self.ext(Self::len_u16)?,
            0xc9 => self.ext(Self::len_u32)?,
            0xca => Token::F32(f32::from_be_bytes(self.array()?)),
            0xcb => Token::F64(f64::from_be_bytes(self.array()?)),
            0xcc => Token::UInt(u64::from(u8::from_be_bytes(self.array()?))),
            0xcd => Token::UInt(u64::from(u16::from_be_bytes(self.array()?))),
            0xce => Token::UInt(u64::from(u32::from_be_bytes(self.array()?))),
            0xcf => Token::UInt(u64::from_be_bytes(self.array()?)),
            0xd0 => Token::Int(i64::from(i8::from_be_bytes(self.array()?))),
            0xd1 => Token::Int(i64::from(i16::from_be_bytes(self.array()?))),
            0xd2 => Token::Int(i64::from(i32::from_be_bytes(self.array()?))),
            0xd3 => Token::Int(i64::from_be_bytes(self.array()?)),
            0xd4 => self.ext(|_| Some(1))?,
            0xd5 => self.ext(|_| Some(2))?,
            0xd6 => self.ext(|_| Some(4))?,
            0xd7 => self.ext(|_| Some(8))?,
            0xd8 => self.ext(|_| Some(16))?,
            0xd9 => Token::Str(self.sized(Self::len_u8)?),
            0xda => Token::Str(self.sized(Self::len_u16)?),
            0xdb => Token::Str(self.sized(Self::len_u32)?),
            0xdc => Token::Array(u32::from(u16::from_be_bytes(self.array()?))),
            0xdd => Token::Array(self.u32()?),
            0xde => Token::Map(u32::from(u16::from_be_bytes(self.array()?))),
            0xdf => Token::Map(self.u32()?),
            0xe0..=0xff => Token::Int(i64::from(i8::from_be_bytes([marker]))),
        })
    }
}
