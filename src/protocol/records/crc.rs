//! CRC-32C helpers for batch headers.
//!
//! Offset assignment may change header bytes that the batch CRC covers (the attributes and the
//! max timestamp, for `LogAppendTime`). Instead of re-reading the whole batch, the CRC is
//! updated from the bytes that changed: CRC-32C is affine over GF(2), so for two inputs of the
//! same length `crc(a) ^ crc(b)` depends only on `a ^ b`, and appending `m` zero bytes to a
//! difference multiplies it by `x^(8m)` modulo the polynomial. The update costs a few hundred
//! bit operations whatever the batch size, and it keeps a CRC that was already wrong wrong: a
//! batch corrupted before the rewrite still fails validation after it.

/// CRC-32C polynomial, reflected (bit 31 is the coefficient of x^0).
const POLY: u32 = 0x82F6_3B78;

/// `a * b mod POLY` in the reflected representation.
const fn mult_mod_poly(a: u32, mut b: u32) -> u32 {
    let mut m: u32 = 1 << 31;
    let mut product: u32 = 0;
    while m != 0 {
        if a & m != 0 {
            product ^= b;
        }
        m >>= 1;
        b = if b & 1 != 0 { (b >> 1) ^ POLY } else { b >> 1 };
    }
    product
}

/// `X_POW_2N[k] = x^(2^k) mod POLY`.
const X_POW_2N: [u32; 64] = {
    let mut table = [0u32; 64];
    table[0] = 1 << 30; // x^1
    let mut k = 1;
    while k < 64 {
        table[k] = mult_mod_poly(table[k - 1], table[k - 1]);
        k += 1;
    }
    table
};

/// `x^(8 * len) mod POLY`: the operator for `len` zero bytes.
fn zero_bytes_operator(len: usize) -> u32 {
    let mut n = len as u64;
    let mut k = 3; // a byte is 2^3 bits
    let mut p: u32 = 1 << 31; // x^0
    while n != 0 {
        if n & 1 != 0 {
            p = mult_mod_poly(X_POW_2N[k % 64], p);
        }
        n >>= 1;
        k += 1;
    }
    p
}

/// The CRC-32C of a buffer whose first `old_prefix.len()` bytes changed from `old_prefix` to
/// `new_prefix`, followed by `suffix_len` unchanged bytes, given the buffer's CRC before the
/// change. `old_prefix` and `new_prefix` must have the same length.
pub(crate) fn update_for_prefix_change(
    old_crc: u32,
    old_prefix: &[u8],
    new_prefix: &[u8],
    suffix_len: usize,
) -> u32 {
    debug_assert_eq!(old_prefix.len(), new_prefix.len());
    let diff = crc32c::crc32c(old_prefix) ^ crc32c::crc32c(new_prefix);
    if diff == 0 {
        return old_crc;
    }
    old_crc ^ mult_mod_poly(zero_bytes_operator(suffix_len), diff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_update_matches_a_full_recompute() {
        let mut data: Vec<u8> = (0..5000u32).map(|i| (i * 31 + 7) as u8).collect();
        for (prefix_len, suffix_len) in [(1usize, 0usize), (22, 18), (22, 4000), (7, 1), (40, 4960)]
        {
            let total = prefix_len + suffix_len;
            let old_crc = crc32c::crc32c(&data[..total]);
            let old_prefix = data[..prefix_len].to_vec();
            for b in data[..prefix_len].iter_mut() {
                *b = b.wrapping_mul(13).wrapping_add(5);
            }
            let updated =
                update_for_prefix_change(old_crc, &old_prefix, &data[..prefix_len], suffix_len);
            assert_eq!(
                updated,
                crc32c::crc32c(&data[..total]),
                "{prefix_len}+{suffix_len}"
            );
        }
    }

    #[test]
    fn unchanged_prefix_keeps_the_crc() {
        assert_eq!(
            update_for_prefix_change(0xdead_beef, b"abc", b"abc", 100),
            0xdead_beef
        );
    }
}
