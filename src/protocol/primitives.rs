//! Wire primitives shared by every message: fixed-width integers, varints, strings, bytes,
//! arrays, UUIDs and tagged fields, in both their classic and compact (flexible) forms.
//!
//! Decoders read from a [`Bytes`] cursor and never panic: every length is checked against what
//! remains before anything is allocated or copied. Byte fields are returned as `Bytes` slices of
//! the input, so bulky payloads (record batches) are never copied.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Why bytes could not be decoded. Any of these closes the connection that sent them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("truncated input: needed {needed} bytes, {remaining} remain")]
    Truncated { needed: usize, remaining: usize },
    #[error("varint is longer than its type allows")]
    VarintTooLong,
    #[error("invalid length {0}")]
    InvalidLength(i64),
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    #[error("null value for a non-nullable field")]
    UnexpectedNull,
    #[error("{what} does not support version {version}")]
    UnsupportedVersion { what: &'static str, version: i16 },
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    #[error("invalid {0}")]
    Invalid(&'static str),
}

/// Why a value could not be encoded at the requested version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("{message}.{field} has a non-default value that version {version} cannot carry")]
    FieldNotSupported {
        message: &'static str,
        field: &'static str,
        version: i16,
    },
    #[error("{what} does not support version {version}")]
    UnsupportedVersion { what: &'static str, version: i16 },
    #[error("{0} is null but not nullable at this version")]
    UnexpectedNull(&'static str),
    #[error("{0} is too long for its length prefix")]
    TooLong(&'static str),
}

pub type DecodeResult<T> = Result<T, DecodeError>;
pub type EncodeResult<T> = Result<T, EncodeError>;

/// A 128-bit UUID as Kafka sends it (topic ids, directory ids). All zeros is the null UUID.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uuid(pub [u8; 16]);

/// URL-safe base64 digits, as Kafka writes ids (topic ids, cluster ids).
pub const BASE64URL: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

impl Uuid {
    pub const NIL: Uuid = Uuid([0; 16]);

    pub fn is_nil(&self) -> bool {
        self.0 == [0; 16]
    }

    /// Kafka's text form (`Uuid.toString`): URL-safe base64 without padding, 22 characters.
    pub fn to_base64url(&self) -> String {
        let mut out = String::with_capacity(22);
        for chunk in self.0.chunks(3) {
            let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
            let n = byte(0) << 16 | byte(1) << 8 | byte(2);
            for i in 0..=chunk.len() {
                let digit = (n >> (18 - 6 * i)) & 63;
                out.push(char::from(BASE64URL[digit as usize]));
            }
        }
        out
    }
}

impl std::fmt::Debug for Uuid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// An unknown tagged field kept verbatim so a decoded message re-encodes byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawTaggedField {
    pub tag: u32,
    pub data: Bytes,
}

fn need(buf: &Bytes, n: usize) -> DecodeResult<()> {
    if buf.remaining() < n {
        return Err(DecodeError::Truncated {
            needed: n,
            remaining: buf.remaining(),
        });
    }
    Ok(())
}

pub fn read_i8(buf: &mut Bytes) -> DecodeResult<i8> {
    need(buf, 1)?;
    Ok(buf.get_i8())
}
pub fn read_bool(buf: &mut Bytes) -> DecodeResult<bool> {
    Ok(read_i8(buf)? != 0)
}
pub fn read_i16(buf: &mut Bytes) -> DecodeResult<i16> {
    need(buf, 2)?;
    Ok(buf.get_i16())
}
pub fn read_u16(buf: &mut Bytes) -> DecodeResult<u16> {
    need(buf, 2)?;
    Ok(buf.get_u16())
}
pub fn read_i32(buf: &mut Bytes) -> DecodeResult<i32> {
    need(buf, 4)?;
    Ok(buf.get_i32())
}
pub fn read_u32(buf: &mut Bytes) -> DecodeResult<u32> {
    need(buf, 4)?;
    Ok(buf.get_u32())
}
pub fn read_i64(buf: &mut Bytes) -> DecodeResult<i64> {
    need(buf, 8)?;
    Ok(buf.get_i64())
}
pub fn read_f64(buf: &mut Bytes) -> DecodeResult<f64> {
    need(buf, 8)?;
    Ok(buf.get_f64())
}
pub fn read_uuid(buf: &mut Bytes) -> DecodeResult<Uuid> {
    need(buf, 16)?;
    let mut id = [0u8; 16];
    buf.copy_to_slice(&mut id);
    Ok(Uuid(id))
}

/// Unsigned LEB128 varint of at most 5 bytes (a u32).
pub fn read_unsigned_varint(buf: &mut Bytes) -> DecodeResult<u32> {
    let mut value: u32 = 0;
    for i in 0..5 {
        let b = read_i8(buf)? as u8;
        let bits = u32::from(b & 0x7f);
        if i == 4 && bits > 0x0f {
            return Err(DecodeError::VarintTooLong);
        }
        value |= bits << (7 * i);
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(DecodeError::VarintTooLong)
}

/// Unsigned LEB128 varint of at most 10 bytes (a u64).
pub fn read_unsigned_varlong(buf: &mut Bytes) -> DecodeResult<u64> {
    let mut value: u64 = 0;
    for i in 0..10 {
        let b = read_i8(buf)? as u8;
        let bits = u64::from(b & 0x7f);
        if i == 9 && bits > 0x01 {
            return Err(DecodeError::VarintTooLong);
        }
        value |= bits << (7 * i);
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(DecodeError::VarintTooLong)
}

/// Zigzag-encoded signed varint (record fields).
pub fn read_varint(buf: &mut Bytes) -> DecodeResult<i32> {
    let v = read_unsigned_varint(buf)?;
    Ok(((v >> 1) as i32) ^ -((v & 1) as i32))
}

/// Zigzag-encoded signed varlong (record fields).
pub fn read_varlong(buf: &mut Bytes) -> DecodeResult<i64> {
    let v = read_unsigned_varlong(buf)?;
    Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
}

/// Length of a string, bytes or array: `None` means null. Compact forms store length + 1 as an
/// unsigned varint (0 = null); classic forms store an i16 (strings) or i32 (bytes, arrays), -1 = null.
fn read_len(buf: &mut Bytes, compact: bool, classic_i16: bool) -> DecodeResult<Option<usize>> {
    let len: i64 = if compact {
        i64::from(read_unsigned_varint(buf)?) - 1
    } else if classic_i16 {
        i64::from(read_i16(buf)?)
    } else {
        i64::from(read_i32(buf)?)
    };
    match len {
        -1 => Ok(None),
        n if n < -1 => Err(DecodeError::InvalidLength(n)),
        n => Ok(Some(n as usize)),
    }
}

fn read_sized(buf: &mut Bytes, len: usize) -> DecodeResult<Bytes> {
    need(buf, len)?;
    Ok(buf.split_to(len))
}

/// Longest protocol string: Kafka refuses longer ones in both the classic and compact forms.
pub const MAX_STRING_LEN: usize = i16::MAX as usize;

pub fn read_nullable_string(buf: &mut Bytes, compact: bool) -> DecodeResult<Option<String>> {
    match read_len(buf, compact, true)? {
        None => Ok(None),
        Some(len) if len > MAX_STRING_LEN => Err(DecodeError::InvalidLength(len as i64)),
        Some(len) => {
            let raw = read_sized(buf, len)?;
            String::from_utf8(raw.to_vec())
                .map(Some)
                .map_err(|_| DecodeError::InvalidUtf8)
        }
    }
}

pub fn read_string(buf: &mut Bytes, compact: bool) -> DecodeResult<String> {
    read_nullable_string(buf, compact)?.ok_or(DecodeError::UnexpectedNull)
}

pub fn read_nullable_bytes(buf: &mut Bytes, compact: bool) -> DecodeResult<Option<Bytes>> {
    match read_len(buf, compact, false)? {
        None => Ok(None),
        Some(len) => read_sized(buf, len).map(Some),
    }
}

pub fn read_bytes(buf: &mut Bytes, compact: bool) -> DecodeResult<Bytes> {
    read_nullable_bytes(buf, compact)?.ok_or(DecodeError::UnexpectedNull)
}

/// Array element count; `None` means a null array. A count larger than the bytes that remain is
/// rejected, because every element takes at least one byte: this bounds allocation and work.
pub fn read_array_len(buf: &mut Bytes, compact: bool) -> DecodeResult<Option<usize>> {
    let len = read_len(buf, compact, false)?;
    if let Some(n) = len {
        if n > buf.remaining() {
            return Err(DecodeError::Truncated {
                needed: n,
                remaining: buf.remaining(),
            });
        }
    }
    Ok(len)
}

/// Reads a tagged-field section, calling `on_field(tag, data)` for each field in order.
pub fn read_tagged_fields(
    buf: &mut Bytes,
    mut on_field: impl FnMut(u32, Bytes) -> DecodeResult<()>,
) -> DecodeResult<()> {
    let count = read_unsigned_varint(buf)? as usize;
    if count > buf.remaining() {
        return Err(DecodeError::Truncated {
            needed: count,
            remaining: buf.remaining(),
        });
    }
    let mut last_tag: Option<u32> = None;
    for _ in 0..count {
        let tag = read_unsigned_varint(buf)?;
        if last_tag.is_some_and(|last| tag <= last) {
            return Err(DecodeError::Invalid("tagged fields out of order"));
        }
        last_tag = Some(tag);
        let size = read_unsigned_varint(buf)? as usize;
        let data = read_sized(buf, size)?;
        on_field(tag, data)?;
    }
    Ok(())
}

// ---- encoding ----

pub fn put_unsigned_varint(buf: &mut BytesMut, mut v: u32) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

pub fn put_unsigned_varlong(buf: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

pub fn put_varint(buf: &mut BytesMut, v: i32) {
    put_unsigned_varint(buf, ((v << 1) ^ (v >> 31)) as u32);
}

pub fn put_varlong(buf: &mut BytesMut, v: i64) {
    put_unsigned_varlong(buf, ((v << 1) ^ (v >> 63)) as u64);
}

pub fn unsigned_varint_len(v: u32) -> usize {
    match v {
        0..=0x7f => 1,
        0x80..=0x3fff => 2,
        0x4000..=0x1f_ffff => 3,
        0x20_0000..=0xfff_ffff => 4,
        _ => 5,
    }
}

pub fn unsigned_varlong_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

pub fn varint_len(v: i32) -> usize {
    unsigned_varint_len(((v << 1) ^ (v >> 31)) as u32)
}

pub fn varlong_len(v: i64) -> usize {
    unsigned_varlong_len(((v << 1) ^ (v >> 63)) as u64)
}

pub fn put_uuid(buf: &mut BytesMut, id: &Uuid) {
    buf.put_slice(&id.0);
}

/// Writes a length prefix (`None` = null) in compact or classic form.
fn put_len(
    buf: &mut BytesMut,
    len: Option<usize>,
    compact: bool,
    classic_i16: bool,
    what: &'static str,
) -> EncodeResult<()> {
    if compact {
        let v = match len {
            None => 0,
            Some(n) => u32::try_from(n)
                .ok()
                .and_then(|n| n.checked_add(1))
                .ok_or(EncodeError::TooLong(what))?,
        };
        put_unsigned_varint(buf, v);
    } else if classic_i16 {
        let v = match len {
            None => -1,
            Some(n) => i16::try_from(n).map_err(|_| EncodeError::TooLong(what))?,
        };
        buf.put_i16(v);
    } else {
        let v = match len {
            None => -1,
            Some(n) => i32::try_from(n).map_err(|_| EncodeError::TooLong(what))?,
        };
        buf.put_i32(v);
    }
    Ok(())
}

fn len_size(len: Option<usize>, compact: bool, classic_i16: bool) -> usize {
    if compact {
        unsigned_varint_len(len.map_or(0, |n| (n as u32).wrapping_add(1)))
    } else if classic_i16 {
        2
    } else {
        4
    }
}

pub fn put_nullable_string(buf: &mut BytesMut, s: Option<&str>, compact: bool) -> EncodeResult<()> {
    if s.is_some_and(|s| s.len() > MAX_STRING_LEN) {
        return Err(EncodeError::TooLong("string"));
    }
    put_len(buf, s.map(str::len), compact, true, "string")?;
    if let Some(s) = s {
        buf.put_slice(s.as_bytes());
    }
    Ok(())
}

pub fn put_string(buf: &mut BytesMut, s: &str, compact: bool) -> EncodeResult<()> {
    put_nullable_string(buf, Some(s), compact)
}

pub fn nullable_string_size(s: Option<&str>, compact: bool) -> usize {
    len_size(s.map(str::len), compact, true) + s.map_or(0, str::len)
}

pub fn string_size(s: &str, compact: bool) -> usize {
    nullable_string_size(Some(s), compact)
}

pub fn put_nullable_bytes(buf: &mut BytesMut, b: Option<&[u8]>, compact: bool) -> EncodeResult<()> {
    put_len(buf, b.map(<[u8]>::len), compact, false, "bytes")?;
    if let Some(b) = b {
        buf.put_slice(b);
    }
    Ok(())
}

pub fn put_bytes(buf: &mut BytesMut, b: &[u8], compact: bool) -> EncodeResult<()> {
    put_nullable_bytes(buf, Some(b), compact)
}

pub fn nullable_bytes_size(b: Option<&[u8]>, compact: bool) -> usize {
    len_size(b.map(<[u8]>::len), compact, false) + b.map_or(0, <[u8]>::len)
}

pub fn bytes_size(b: &[u8], compact: bool) -> usize {
    nullable_bytes_size(Some(b), compact)
}

/// Array element count (`None` = null array).
pub fn put_array_len(buf: &mut BytesMut, len: Option<usize>, compact: bool) -> EncodeResult<()> {
    put_len(buf, len, compact, false, "array")
}

pub fn array_len_size(len: Option<usize>, compact: bool) -> usize {
    len_size(len, compact, false)
}

/// Writes one tagged field header (tag, size); the caller writes `size` bytes of data after it.
pub fn put_tagged_field_header(buf: &mut BytesMut, tag: u32, size: usize) -> EncodeResult<()> {
    put_unsigned_varint(buf, tag);
    put_unsigned_varint(
        buf,
        u32::try_from(size).map_err(|_| EncodeError::TooLong("tagged field"))?,
    );
    Ok(())
}

pub fn tagged_field_header_size(tag: u32, size: usize) -> usize {
    unsigned_varint_len(tag) + unsigned_varint_len(size as u32)
}

// ---- helpers for the generated message code ----
//
// `nullable` says whether the field may be null at the version being read or written; `field`
// names it in errors. Arrays take the element codec as a closure, so each message's code stays
// straight-line and monomorphic.

/// Arrays are filled as elements decode rather than sized up front from a count on the wire.
const MAX_PREALLOC: usize = 1024;

pub fn read_string_opt(
    buf: &mut Bytes,
    compact: bool,
    nullable: bool,
) -> DecodeResult<Option<String>> {
    let s = read_nullable_string(buf, compact)?;
    if s.is_none() && !nullable {
        return Err(DecodeError::UnexpectedNull);
    }
    Ok(s)
}

pub fn read_bytes_opt(
    buf: &mut Bytes,
    compact: bool,
    nullable: bool,
) -> DecodeResult<Option<Bytes>> {
    let b = read_nullable_bytes(buf, compact)?;
    if b.is_none() && !nullable {
        return Err(DecodeError::UnexpectedNull);
    }
    Ok(b)
}

/// Whether a nullable struct follows. Inline, the marker is an int8 (negative = null); inside a
/// tagged field it is an unsigned varint (0 = null). Non-nullable structs have no marker.
pub fn read_struct_marker(buf: &mut Bytes, nullable: bool, tagged: bool) -> DecodeResult<bool> {
    if !nullable {
        Ok(true)
    } else if tagged {
        Ok(read_unsigned_varint(buf)? > 0)
    } else {
        Ok(read_i8(buf)? >= 0)
    }
}

pub fn read_array<T>(
    buf: &mut Bytes,
    compact: bool,
    elem: impl FnMut(&mut Bytes) -> DecodeResult<T>,
) -> DecodeResult<Vec<T>> {
    read_array_opt(buf, compact, false, elem)?.ok_or(DecodeError::UnexpectedNull)
}

pub fn read_array_opt<T>(
    buf: &mut Bytes,
    compact: bool,
    nullable: bool,
    mut elem: impl FnMut(&mut Bytes) -> DecodeResult<T>,
) -> DecodeResult<Option<Vec<T>>> {
    let Some(n) = read_array_len(buf, compact)? else {
        return if nullable {
            Ok(None)
        } else {
            Err(DecodeError::UnexpectedNull)
        };
    };
    let mut v = Vec::with_capacity(n.min(MAX_PREALLOC));
    for _ in 0..n {
        v.push(elem(buf)?);
    }
    Ok(Some(v))
}

/// A tagged-field section where every field is unknown to this version.
pub fn read_raw_tagged_fields(buf: &mut Bytes) -> DecodeResult<Vec<RawTaggedField>> {
    let mut fields = Vec::new();
    read_tagged_fields(buf, |tag, data| {
        fields.push(RawTaggedField { tag, data });
        Ok(())
    })?;
    Ok(fields)
}

/// A known tagged field must fill exactly the size its header declares.
pub fn check_consumed(data: &Bytes) -> DecodeResult<()> {
    if data.is_empty() {
        Ok(())
    } else {
        Err(DecodeError::Invalid("tagged field longer than its value"))
    }
}

fn check_null(present: bool, nullable: bool, field: &'static str) -> EncodeResult<()> {
    if present || nullable {
        Ok(())
    } else {
        Err(EncodeError::UnexpectedNull(field))
    }
}

pub fn put_string_opt(
    buf: &mut BytesMut,
    s: Option<&str>,
    compact: bool,
    nullable: bool,
    field: &'static str,
) -> EncodeResult<()> {
    check_null(s.is_some(), nullable, field)?;
    put_nullable_string(buf, s, compact)
}

pub fn string_opt_size(
    s: Option<&str>,
    compact: bool,
    nullable: bool,
    field: &'static str,
) -> EncodeResult<usize> {
    check_null(s.is_some(), nullable, field)?;
    Ok(nullable_string_size(s, compact))
}

pub fn put_bytes_opt(
    buf: &mut BytesMut,
    b: Option<&[u8]>,
    compact: bool,
    nullable: bool,
    field: &'static str,
) -> EncodeResult<()> {
    check_null(b.is_some(), nullable, field)?;
    put_nullable_bytes(buf, b, compact)
}

pub fn bytes_opt_size(
    b: Option<&[u8]>,
    compact: bool,
    nullable: bool,
    field: &'static str,
) -> EncodeResult<usize> {
    check_null(b.is_some(), nullable, field)?;
    Ok(nullable_bytes_size(b, compact))
}

/// The marker before a nullable struct (see [`read_struct_marker`]).
pub fn put_struct_marker(
    buf: &mut BytesMut,
    present: bool,
    nullable: bool,
    tagged: bool,
    field: &'static str,
) -> EncodeResult<()> {
    check_null(present, nullable, field)?;
    if nullable {
        if tagged {
            put_unsigned_varint(buf, u32::from(present));
        } else {
            buf.put_i8(if present { 1 } else { -1 });
        }
    }
    Ok(())
}

pub fn struct_marker_size(
    present: bool,
    nullable: bool,
    field: &'static str,
) -> EncodeResult<usize> {
    check_null(present, nullable, field)?;
    Ok(usize::from(nullable))
}

pub fn put_array<T>(
    buf: &mut BytesMut,
    items: &[T],
    compact: bool,
    elem: impl FnMut(&mut BytesMut, &T) -> EncodeResult<()>,
) -> EncodeResult<()> {
    put_array_opt(buf, Some(items), compact, false, "array", elem)
}

pub fn put_array_opt<T>(
    buf: &mut BytesMut,
    items: Option<&[T]>,
    compact: bool,
    nullable: bool,
    field: &'static str,
    mut elem: impl FnMut(&mut BytesMut, &T) -> EncodeResult<()>,
) -> EncodeResult<()> {
    check_null(items.is_some(), nullable, field)?;
    put_array_len(buf, items.map(<[T]>::len), compact)?;
    for item in items.unwrap_or_default() {
        elem(buf, item)?;
    }
    Ok(())
}

pub fn array_size<T>(
    items: &[T],
    compact: bool,
    elem: impl FnMut(&T) -> EncodeResult<usize>,
) -> EncodeResult<usize> {
    array_opt_size(Some(items), compact, false, "array", elem)
}

pub fn array_opt_size<T>(
    items: Option<&[T]>,
    compact: bool,
    nullable: bool,
    field: &'static str,
    mut elem: impl FnMut(&T) -> EncodeResult<usize>,
) -> EncodeResult<usize> {
    check_null(items.is_some(), nullable, field)?;
    let mut size = array_len_size(items.map(<[T]>::len), compact);
    for item in items.unwrap_or_default() {
        size += elem(item)?;
    }
    Ok(size)
}

/// The number of fields that open a tagged-field section.
pub fn put_tagged_count(buf: &mut BytesMut, count: usize) -> EncodeResult<()> {
    put_unsigned_varint(
        buf,
        u32::try_from(count).map_err(|_| EncodeError::TooLong("tagged fields"))?,
    );
    Ok(())
}

pub fn tagged_count_size(count: usize) -> usize {
    unsigned_varint_len(count as u32)
}

/// Writes the unknown tagged fields that sort before tag `below` (all of them for `None`), so
/// that known and unknown fields come out in ascending tag order, as they were read.
pub fn put_unknown_tagged_fields(
    buf: &mut BytesMut,
    unknown: &mut std::iter::Peekable<std::slice::Iter<'_, RawTaggedField>>,
    below: Option<u32>,
) -> EncodeResult<()> {
    while let Some(f) = unknown.next_if(|f| below.is_none_or(|b| f.tag < b)) {
        put_tagged_field_header(buf, f.tag, f.data.len())?;
        buf.put_slice(&f.data);
    }
    Ok(())
}

/// A tagged-field section holding only unknown fields.
pub fn put_raw_tagged_fields(buf: &mut BytesMut, fields: &[RawTaggedField]) -> EncodeResult<()> {
    put_tagged_count(buf, fields.len())?;
    put_unknown_tagged_fields(buf, &mut fields.iter().peekable(), None)
}

/// Size of unknown tagged fields, without the count that opens the section.
pub fn raw_tagged_fields_body_size(fields: &[RawTaggedField]) -> usize {
    fields
        .iter()
        .map(|f| tagged_field_header_size(f.tag, f.data.len()) + f.data.len())
        .sum()
}

pub fn raw_tagged_fields_size(fields: &[RawTaggedField]) -> usize {
    tagged_count_size(fields.len()) + raw_tagged_fields_body_size(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn unsigned_varint_round_trips(v: u32) {
            let mut buf = BytesMut::new();
            put_unsigned_varint(&mut buf, v);
            prop_assert_eq!(buf.len(), unsigned_varint_len(v));
            let mut bytes = buf.freeze();
            prop_assert_eq!(read_unsigned_varint(&mut bytes).unwrap(), v);
            prop_assert!(bytes.is_empty());
        }

        #[test]
        fn zigzag_varlong_round_trips(v: i64) {
            let mut buf = BytesMut::new();
            put_varlong(&mut buf, v);
            prop_assert_eq!(buf.len(), varlong_len(v));
            prop_assert_eq!(read_varlong(&mut buf.freeze()).unwrap(), v);
        }

        #[test]
        fn zigzag_varint_round_trips(v: i32) {
            let mut buf = BytesMut::new();
            put_varint(&mut buf, v);
            prop_assert_eq!(buf.len(), varint_len(v));
            prop_assert_eq!(read_varint(&mut buf.freeze()).unwrap(), v);
        }

        #[test]
        fn strings_round_trip(s: Option<String>, compact: bool) {
            let mut buf = BytesMut::new();
            put_nullable_string(&mut buf, s.as_deref(), compact).unwrap();
            prop_assert_eq!(buf.len(), nullable_string_size(s.as_deref(), compact));
            prop_assert_eq!(read_nullable_string(&mut buf.freeze(), compact).unwrap(), s);
        }

        #[test]
        fn decoders_never_panic(data: Vec<u8>, compact: bool) {
            let bytes = Bytes::from(data);
            let _ = read_nullable_string(&mut bytes.clone(), compact);
            let _ = read_nullable_bytes(&mut bytes.clone(), compact);
            let _ = read_array_len(&mut bytes.clone(), compact);
            let _ = read_tagged_fields(&mut bytes.clone(), |_, _| Ok(()));
            let _ = read_varlong(&mut bytes.clone());
        }
    }

    #[test]
    fn length_beyond_input_is_an_error() {
        let mut buf = Bytes::from_static(&[0, 0, 0, 9, 1, 2]);
        assert!(matches!(
            read_bytes(&mut buf, false),
            Err(DecodeError::Truncated { .. })
        ));
        let mut buf = Bytes::from_static(&[0x7f, 0xff, 0xff, 0xff]);
        assert!(read_array_len(&mut buf, false).is_err());
    }

    #[test]
    fn overlong_varint_is_rejected() {
        let mut buf = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x7f]);
        assert_eq!(
            read_unsigned_varint(&mut buf),
            Err(DecodeError::VarintTooLong)
        );
        let mut buf = Bytes::from_static(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01]);
        assert_eq!(
            read_unsigned_varint(&mut buf),
            Err(DecodeError::VarintTooLong)
        );
    }
}
