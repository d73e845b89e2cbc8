//! Framing: every request and response is a 4-byte big-endian size followed by that many bytes.
//!
//! The decoder checks the size prefix against `socket.request.max.bytes` before it reserves or
//! allocates anything, so a peer cannot make us allocate by announcing a huge frame.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Bytes of the size prefix.
pub const FRAME_PREFIX_LEN: usize = 4;
/// Kafka's default `socket.request.max.bytes`: 100 MiB.
pub const DEFAULT_SOCKET_REQUEST_MAX_BYTES: usize = 104_857_600;

/// A frame the peer must not send. Either closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("negative frame size {0}")]
    NegativeSize(i32),
    #[error("frame of {size} bytes exceeds the limit of {max} bytes (socket.request.max.bytes)")]
    TooLarge { size: usize, max: usize },
}

/// Splits a connection's read buffer into frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameDecoder {
    max_frame_size: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder::new(DEFAULT_SOCKET_REQUEST_MAX_BYTES)
    }
}

impl FrameDecoder {
    /// `max_frame_size` is the largest payload accepted, not counting the prefix.
    pub fn new(max_frame_size: usize) -> Self {
        FrameDecoder { max_frame_size }
    }

    pub fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// Takes the next whole frame's payload off the front of `buf`.
    ///
    /// `Ok(None)` means more bytes are needed; `buf` is left as it was, with room reserved for
    /// the rest of the frame once its (already checked) size is known. Several pipelined frames
    /// in `buf` come out one call at a time. The payload is split off `buf` without copying.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let Some(prefix) = buf.get(..FRAME_PREFIX_LEN) else {
            return Ok(None);
        };
        let size = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        let size = usize::try_from(size).map_err(|_| FrameError::NegativeSize(size))?;
        if size > self.max_frame_size {
            return Err(FrameError::TooLarge {
                size,
                max: self.max_frame_size,
            });
        }
        // Cannot overflow: size < 2^31.
        let total = FRAME_PREFIX_LEN + size;
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        buf.advance(FRAME_PREFIX_LEN);
        Ok(Some(buf.split_to(size).freeze()))
    }
}

/// Appends `payload` to `out` as one frame.
pub fn encode_frame(payload: &[u8], out: &mut BytesMut) -> Result<(), FrameError> {
    let size = i32::try_from(payload.len()).map_err(|_| FrameError::TooLarge {
        size: payload.len(),
        max: i32::MAX as usize,
    })?;
    out.reserve(FRAME_PREFIX_LEN + payload.len());
    out.put_i32(size);
    out.put_slice(payload);
    Ok(())
}

/// Where a frame being written in place started; see [`start_frame`].
#[derive(Debug)]
#[must_use = "finish_frame writes the size prefix"]
pub struct FrameStart(usize);

/// Starts a frame whose payload will be encoded straight into `out`: writes a placeholder
/// prefix that [`finish_frame`] fills in, so the payload is never copied.
pub fn start_frame(out: &mut BytesMut) -> FrameStart {
    let at = out.len();
    out.put_i32(0);
    FrameStart(at)
}

/// Writes the size prefix of the frame begun at `start`, covering everything written since.
pub fn finish_frame(out: &mut BytesMut, start: FrameStart) -> Result<(), FrameError> {
    let payload_len = out.len().saturating_sub(start.0 + FRAME_PREFIX_LEN);
    let size = i32::try_from(payload_len).map_err(|_| FrameError::TooLarge {
        size: payload_len,
        max: i32::MAX as usize,
    })?;
    out[start.0..start.0 + FRAME_PREFIX_LEN].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn framed(payloads: &[&[u8]]) -> BytesMut {
        let mut out = BytesMut::new();
        for p in payloads {
            encode_frame(p, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn whole_frame_comes_out() {
        let mut buf = framed(&[b"hello"]);
        let d = FrameDecoder::default();
        assert_eq!(d.decode(&mut buf).unwrap().unwrap(), &b"hello"[..]);
        assert!(buf.is_empty());
        assert_eq!(d.decode(&mut buf).unwrap(), None);
    }

    #[test]
    fn partial_frames_wait_for_more_bytes() {
        let all = framed(&[b"abcdefgh"]);
        let d = FrameDecoder::default();
        let mut buf = BytesMut::new();
        for (i, byte) in all.iter().enumerate() {
            assert_eq!(d.decode(&mut buf).unwrap(), None, "after {i} bytes");
            buf.put_u8(*byte);
        }
        assert_eq!(d.decode(&mut buf).unwrap().unwrap(), &b"abcdefgh"[..]);
    }

    #[test]
    fn pipelined_frames_come_out_in_order() {
        let mut buf = framed(&[b"one", b"", b"three"]);
        buf.extend_from_slice(&framed(&[b"four"])[..5]); // a partial fourth frame
        let d = FrameDecoder::default();
        assert_eq!(d.decode(&mut buf).unwrap().unwrap(), &b"one"[..]);
        assert_eq!(d.decode(&mut buf).unwrap().unwrap(), &b""[..]);
        assert_eq!(d.decode(&mut buf).unwrap().unwrap(), &b"three"[..]);
        assert_eq!(d.decode(&mut buf).unwrap(), None);
        assert_eq!(buf.len(), 5);
    }

    #[test]
    fn negative_size_is_an_error() {
        let mut buf = BytesMut::from(&(-1i32).to_be_bytes()[..]);
        assert_eq!(
            FrameDecoder::default().decode(&mut buf),
            Err(FrameError::NegativeSize(-1))
        );
    }

    #[test]
    fn oversized_frame_is_rejected_before_reserving() {
        let mut buf = BytesMut::with_capacity(8);
        buf.put_i32(i32::MAX);
        let cap = buf.capacity();
        let d = FrameDecoder::default();
        assert_eq!(
            d.decode(&mut buf),
            Err(FrameError::TooLarge {
                size: i32::MAX as usize,
                max: DEFAULT_SOCKET_REQUEST_MAX_BYTES
            })
        );
        assert_eq!(buf.capacity(), cap);

        let small = FrameDecoder::new(10);
        assert!(small.decode(&mut framed(&[&[0u8; 10]])).unwrap().is_some());
        assert!(small.decode(&mut framed(&[&[0u8; 11]])).is_err());
    }

    #[test]
    fn in_place_frame_matches_encode_frame() {
        let mut a = BytesMut::new();
        let start = start_frame(&mut a);
        a.extend_from_slice(b"payload");
        finish_frame(&mut a, start).unwrap();
        assert_eq!(a, framed(&[b"payload"]));
    }

    proptest! {
        #[test]
        fn any_split_of_any_frames_decodes_to_the_same_payloads(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..6),
            chunk in 1usize..17,
        ) {
            let refs: Vec<&[u8]> = payloads.iter().map(|p| &p[..]).collect();
            let all = framed(&refs);
            let d = FrameDecoder::new(64);
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            for piece in all.chunks(chunk) {
                buf.extend_from_slice(piece);
                while let Some(frame) = d.decode(&mut buf).unwrap() {
                    out.push(frame.to_vec());
                }
            }
            prop_assert_eq!(out, payloads);
            prop_assert!(buf.is_empty());
        }

        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let d = FrameDecoder::new(32);
            let mut buf = BytesMut::from(&data[..]);
            while let Ok(Some(_)) = d.decode(&mut buf) {}
        }
    }
}
