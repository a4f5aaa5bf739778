//! A deflate stream built bit by bit: one literal zero, then `matches`
//! copies of <length 258, distance 1>, each coded in two bits, in one
//! dynamic-Huffman block. It inflates to `1 + 258 * matches` zero bytes
//! from about `matches / 4` bytes: 1 GiB from about 1 MiB, built in
//! microseconds (no compressor runs).

struct Bits {
    out: Vec<u8>,
    bit: usize,
}

impl Bits {
    fn new(capacity: usize) -> Bits {
        Bits {
            out: Vec::with_capacity(capacity),
            bit: 0,
        }
    }
    fn one(&mut self, v: bool) {
        if self.bit % 8 == 0 {
            self.out.push(0);
        }
        if v {
            *self.out.last_mut().unwrap() |= 1 << (self.bit % 8);
        }
        self.bit += 1;
    }
    /// A number, least significant bit first (header fields, extra bits).
    fn num(&mut self, v: u32, n: u32) {
        for i in 0..n {
            self.one(v >> i & 1 == 1);
        }
    }
    /// A Huffman code, most significant bit first.
    fn code(&mut self, v: u32, n: u32) {
        for i in (0..n).rev() {
            self.one(v >> i & 1 == 1);
        }
    }
    /// `n` zero bits, fast.
    fn zeros(&mut self, n: usize) {
        self.bit += n;
        self.out.resize(self.bit.div_ceil(8), 0);
    }
}

/// Deflate data inflating to `1 + 258 * matches` zero bytes.
pub fn zeros_stream(matches: usize) -> Vec<u8> {
    let mut w = Bits::new(matches / 4 + 64);
    w.num(1, 1); // BFINAL
    w.num(2, 2); // BTYPE = dynamic
    w.num(286 - 257, 5); // HLIT
    w.num(0, 5); // HDIST: one distance code
    w.num(18 - 4, 4); // HCLEN: 18 code-length code lengths
                      // Code-length alphabet: 18 -> "0" (1 bit), 1 -> "10", 2 -> "11".
    const ORDER: [usize; 18] = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1];
    for sym in ORDER {
        let len = match sym {
            18 => 1,
            1 | 2 => 2,
            _ => 0,
        };
        w.num(len, 3);
    }
    let two = |w: &mut Bits| w.code(0b11, 2);
    let one = |w: &mut Bits| w.code(0b10, 2);
    let zeros = |w: &mut Bits, n: u32| {
        w.code(0, 1);
        w.num(n - 11, 7);
    };
    // Literal/length lengths: 0 -> 2, 1..=255 -> 0, 256 -> 2, 257..=284 -> 0, 285 -> 1.
    two(&mut w);
    zeros(&mut w, 138);
    zeros(&mut w, 117);
    two(&mut w);
    zeros(&mut w, 28);
    one(&mut w);
    // Distance lengths: 0 -> 1.
    one(&mut w);
    // Canonical codes: 285 -> "0", 0 -> "10", 256 -> "11"; distance 0 -> "0".
    w.code(0b10, 2); // literal 0
    w.zeros(2 * matches); // each match: "0" (length 258) + "0" (distance 1)
    w.code(0b11, 2); // end of block
    w.out
}
