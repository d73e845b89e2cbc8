//! Version ranges as the specs write them ("0+", "3-7", "5", "none") and the Rust conditions
//! that test them.

use std::fmt;

/// An inclusive range of versions; empty when `lo > hi`. An open range ("3+") ends at `i16::MAX`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Versions {
    pub lo: i16,
    pub hi: i16,
}

impl Versions {
    pub const NONE: Versions = Versions { lo: 1, hi: 0 };
    pub fn parse(text: &str) -> Result<Versions, String> {
        let text = text.trim();
        let num = |s: &str| {
            s.trim()
                .parse::<i16>()
                .map_err(|_| format!("bad version range {text:?}"))
        };
        if text == "none" {
            Ok(Self::NONE)
        } else if let Some(lo) = text.strip_suffix('+') {
            Ok(Versions {
                lo: num(lo)?,
                hi: i16::MAX,
            })
        } else if let Some((lo, hi)) = text.split_once('-') {
            let v = Versions {
                lo: num(lo)?,
                hi: num(hi)?,
            };
            if v.is_empty() {
                return Err(format!("empty version range {text:?}"));
            }
            Ok(v)
        } else {
            let v = num(text)?;
            Ok(Versions { lo: v, hi: v })
        }
    }

    pub fn is_empty(self) -> bool {
        self.lo > self.hi
    }

    pub fn intersect(self, other: Versions) -> Versions {
        let v = Versions {
            lo: self.lo.max(other.lo),
            hi: self.hi.min(other.hi),
        };
        if v.is_empty() {
            Self::NONE
        } else {
            v
        }
    }

    /// The smallest range covering both.
    pub fn hull(self, other: Versions) -> Versions {
        if self.is_empty() {
            other
        } else if other.is_empty() {
            self
        } else {
            Versions {
                lo: self.lo.min(other.lo),
                hi: self.hi.max(other.hi),
            }
        }
    }

    /// `self` minus `other`; the specs only ever remove a prefix or a suffix.
    pub fn subtract(self, other: Versions) -> Result<Versions, String> {
        let other = other.intersect(self);
        if other.is_empty() {
            Ok(self)
        } else if other == self {
            Ok(Self::NONE)
        } else if other.lo == self.lo {
            Ok(Versions {
                lo: other.hi + 1,
                hi: self.hi,
            })
        } else if other.hi == self.hi {
            Ok(Versions {
                lo: self.lo,
                hi: other.lo - 1,
            })
        } else {
            Err(format!("{self} minus {other} is not one range"))
        }
    }

    pub fn is_subset_of(self, other: Versions) -> bool {
        self.is_empty() || self.intersect(other) == self
    }
}

impl fmt::Display for Versions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            write!(f, "none")
        } else if self.hi == i16::MAX {
            write!(f, "{}+", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

/// Whether `version` is in a range, knowing it is already within `context`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Cond {
    Always,
    Never,
    /// A boolean Rust expression over `version`.
    Expr(String),
}

impl Cond {
    pub fn new(versions: Versions, context: Versions) -> Cond {
        let x = versions.intersect(context);
        if x.is_empty() {
            Cond::Never
        } else if x == context {
            Cond::Always
        } else if x.lo > context.lo && x.hi < context.hi {
            if x.lo == x.hi {
                Cond::Expr(format!("version == {}", x.lo))
            } else {
                Cond::Expr(format!("({}..={}).contains(&version)", x.lo, x.hi))
            }
        } else if x.lo > context.lo {
            Cond::Expr(format!("version >= {}", x.lo))
        } else {
            Cond::Expr(format!("version <= {}", x.hi))
        }
    }

    /// The condition as a Rust boolean expression.
    pub fn expr(&self) -> String {
        match self {
            Cond::Always => "true".into(),
            Cond::Never => "false".into(),
            Cond::Expr(e) => e.clone(),
        }
    }

    pub fn not(&self) -> Cond {
        match self {
            Cond::Always => Cond::Never,
            Cond::Never => Cond::Always,
            Cond::Expr(e) => Cond::Expr(negate(e)),
        }
    }
}

/// The negation of a simple boolean expression, in the form clippy prefers (`a < b`, not
/// `!(a >= b)`). Handles the shapes the generator produces; anything else is wrapped in `!(..)`.
pub fn negate(e: &str) -> String {
    if e.contains("&&") || e.contains("||") {
        return format!("!({e})");
    }
    let ops = [
        (" >= ", " < "),
        (" <= ", " > "),
        (" == ", " != "),
        (" != ", " == "),
    ];
    let found: Vec<_> = ops.iter().filter(|(op, _)| e.contains(op)).collect();
    if let [(op, neg)] = found.as_slice() {
        if e.matches(op).count() == 1 {
            return e.replacen(op, neg, 1);
        }
    }
    if let Some(inner) = e.strip_suffix(".is_none()") {
        if !inner.contains(' ') {
            return format!("{inner}.is_some()");
        }
    }
    if let Some(inner) = e.strip_prefix('!') {
        if !inner.contains(' ') && !inner.starts_with('(') {
            return inner.to_string();
        }
    }
    if !e.contains(' ') {
        return format!("!{e}");
    }
    format!("!({e})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_spec_forms() {
        assert_eq!(
            Versions::parse("3+").unwrap(),
            Versions {
                lo: 3,
                hi: i16::MAX
            }
        );
        assert_eq!(Versions::parse("0-11").unwrap(), Versions { lo: 0, hi: 11 });
        assert_eq!(Versions::parse("5").unwrap(), Versions { lo: 5, hi: 5 });
        assert!(Versions::parse("none").unwrap().is_empty());
    }

    #[test]
    fn conditions_simplify_against_their_context() {
        let ctx = Versions { lo: 0, hi: 11 };
        assert_eq!(Cond::new(Versions::parse("0+").unwrap(), ctx), Cond::Always);
        assert_eq!(Cond::new(Versions::parse("12+").unwrap(), ctx), Cond::Never);
        assert_eq!(
            Cond::new(Versions::parse("3+").unwrap(), ctx).expr(),
            "version >= 3"
        );
        assert_eq!(
            Cond::new(Versions::parse("0-2").unwrap(), ctx).expr(),
            "version <= 2"
        );
        assert_eq!(
            Cond::new(Versions::parse("3-5").unwrap(), ctx).expr(),
            "(3..=5).contains(&version)"
        );
    }

    #[test]
    fn negations_stay_minimal() {
        assert_eq!(negate("version >= 3"), "version < 3");
        assert_eq!(negate("self.a == -1"), "self.a != -1");
        assert_eq!(negate("self.a.is_none()"), "self.a.is_some()");
        assert_eq!(negate("!self.a"), "self.a");
        assert_eq!(negate("self.a.is_empty()"), "!self.a.is_empty()");
        assert_eq!(
            negate("(3..=5).contains(&version)"),
            "!(3..=5).contains(&version)"
        );
        assert_eq!(negate("version >= 3 && x"), "!(version >= 3 && x)");
    }
}
