//! Arbitrary message values for property tests, drawn from a byte string the way fuzzers do:
//! every generated struct has an `Arbitrary` impl (see `generated/`) that sets only the fields
//! its version carries, so any value it builds must survive an encode/decode round trip.
//! Running out of bytes yields zeros and empty collections, so short inputs give small values.

use crate::protocol::message::Message;
use crate::protocol::primitives::{RawTaggedField, Uuid};
use bytes::Bytes;
use std::fmt::Debug;

pub(crate) trait Arbitrary {
    /// A value valid at `version`: fields absent from it keep their defaults, and null appears
    /// only where the version allows it.
    fn arbitrary(u: &mut Entropy<'_>, version: i16) -> Self;
}

/// Something to run on every generated message type (see `generated::visit_all_messages`).
pub(crate) trait MessageVisitor {
    fn visit<M: Message + Arbitrary + PartialEq + Debug>(&mut self);
}

pub(crate) struct Entropy<'a> {
    data: &'a [u8],
}

impl<'a> Entropy<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Entropy { data }
    }

    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for b in &mut out {
            *b = self.byte();
        }
        out
    }

    /// One time in four a default-like value (0 or -1), so "omit when default" paths run too.
    fn special(&mut self) -> Option<i8> {
        match self.byte() % 4 {
            0 => Some(0),
            1 => Some(-1),
            _ => None,
        }
    }

    pub(crate) fn bool(&mut self) -> bool {
        self.byte() & 1 == 1
    }
    pub(crate) fn i8(&mut self) -> i8 {
        self.byte() as i8
    }
    pub(crate) fn i16(&mut self) -> i16 {
        self.special()
            .map_or_else(|| i16::from_be_bytes(self.take()), i16::from)
    }
    pub(crate) fn u16(&mut self) -> u16 {
        u16::from_be_bytes(self.take())
    }
    pub(crate) fn i32(&mut self) -> i32 {
        self.special()
            .map_or_else(|| i32::from_be_bytes(self.take()), i32::from)
    }
    #[allow(dead_code)] // no spec has a uint32 field yet
    pub(crate) fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.take())
    }
    pub(crate) fn i64(&mut self) -> i64 {
        self.special()
            .map_or_else(|| i64::from_be_bytes(self.take()), i64::from)
    }
    /// Finite values only, so decoded values compare equal.
    pub(crate) fn f64(&mut self) -> f64 {
        f64::from(self.i32()) / 4.0
    }
    pub(crate) fn uuid(&mut self) -> Uuid {
        if self.bool() {
            Uuid::NIL
        } else {
            Uuid(self.take())
        }
    }

    /// Mostly 0..=7, sometimes long enough to need a two-byte compact length.
    fn len(&mut self, small: u8) -> usize {
        match self.byte() {
            250..=255 => 128 + usize::from(self.byte()),
            b => usize::from(b % (small + 1)),
        }
    }

    pub(crate) fn string(&mut self) -> String {
        const CHARS: &[char] = &['a', 'z', 'K', '0', '-', '.', '_', ' ', 'é', 'ß', '→', '🦀'];
        let n = self.len(7);
        (0..n)
            .map(|_| CHARS[usize::from(self.byte()) % CHARS.len()])
            .collect()
    }

    pub(crate) fn bytes(&mut self) -> Bytes {
        let n = self.len(7);
        Bytes::from((0..n).map(|_| self.byte()).collect::<Vec<u8>>())
    }

    /// `None` one time in four where null is allowed.
    pub(crate) fn option<T>(
        &mut self,
        nullable: bool,
        f: impl FnOnce(&mut Self) -> T,
    ) -> Option<T> {
        if nullable && self.byte() % 4 == 0 {
            None
        } else {
            Some(f(self))
        }
    }

    /// Up to three elements.
    pub(crate) fn vec<T>(&mut self, mut f: impl FnMut(&mut Self) -> T) -> Vec<T> {
        let n = self.byte() % 4;
        (0..n).map(|_| f(self)).collect()
    }

    /// Tagged fields this version does not know, with tags from `first_free` up, ascending.
    pub(crate) fn unknown_tagged_fields(&mut self, first_free: u32) -> Vec<RawTaggedField> {
        let n = self.byte() % 8;
        let n = if n >= 6 { n - 5 } else { 0 };
        let mut tag = first_free;
        (0..n)
            .map(|_| {
                tag += u32::from(self.byte() % 3);
                let field = RawTaggedField {
                    tag,
                    data: self.bytes(),
                };
                tag += 1;
                field
            })
            .collect()
    }
}
