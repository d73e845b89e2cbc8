//! The interface every generated message type implements.
//!
//! A message is decoded and encoded at an explicit version; each generated type knows which
//! versions exist (`VERSIONS`) and from which one on it uses the flexible encoding (compact
//! strings and arrays, tagged fields). API messages add their key; requests name their response.

use crate::protocol::primitives::{DecodeError, DecodeResult, EncodeError, EncodeResult};
use bytes::{Bytes, BytesMut};

pub trait Message: Sized {
    /// The spec's name, e.g. `ProduceRequest`.
    const NAME: &'static str;
    /// The lowest and highest version the generated code can read and write.
    const VERSIONS: (i16, i16);
    /// The first flexible version, if any; every later version is flexible too.
    const FLEXIBLE_MIN: Option<i16>;

    /// Reads one message at `version` from the front of `buf`, leaving what follows it.
    /// Byte fields (record batches included) are slices of `buf`, not copies.
    fn decode(buf: &mut Bytes, version: i16) -> DecodeResult<Self>;

    /// Appends the message at `version`. Fails if a field this version cannot carry holds a
    /// non-default value (unless the spec marks it ignorable, in which case it is dropped).
    fn encode(&self, buf: &mut BytesMut, version: i16) -> EncodeResult<()>;

    /// The exact number of bytes `encode` appends at `version`.
    fn compute_size(&self, version: i16) -> EncodeResult<usize>;

    fn is_valid_version(version: i16) -> bool {
        (Self::VERSIONS.0..=Self::VERSIONS.1).contains(&version)
    }

    fn is_flexible(version: i16) -> bool {
        Self::FLEXIBLE_MIN.is_some_and(|min| version >= min)
    }

    /// Encodes into a buffer of exactly the right size.
    fn to_bytes(&self, version: i16) -> EncodeResult<BytesMut> {
        let mut buf = BytesMut::with_capacity(self.compute_size(version)?);
        self.encode(&mut buf, version)?;
        Ok(buf)
    }
}

/// A request or response of one API.
pub trait ApiMessage: Message {
    const API_KEY: i16;
}

/// A request, tied to the response type it gets back.
pub trait Request: ApiMessage {
    type Response: ApiMessage;
}

/// The version check generated `decode` functions run first.
pub fn check_decode_version<M: Message>(version: i16) -> DecodeResult<()> {
    if M::is_valid_version(version) {
        Ok(())
    } else {
        Err(DecodeError::UnsupportedVersion {
            what: M::NAME,
            version,
        })
    }
}

/// The version check generated `encode` and `compute_size` functions run first.
pub fn check_encode_version<M: Message>(version: i16) -> EncodeResult<()> {
    if M::is_valid_version(version) {
        Ok(())
    } else {
        Err(EncodeError::UnsupportedVersion {
            what: M::NAME,
            version,
        })
    }
}
