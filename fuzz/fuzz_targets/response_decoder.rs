//! The response decoder over arbitrary bytes, fed in arbitrary pieces and then at EOF, with
//! `expect(head_request)` chosen per response by the bits of a control byte.
//!
//! Input: `[flags, head_bits, limits, n, plan[n]..., message...]`. Checks, beyond the shared
//! ones: a 1xx is followed by a head, nothing decodes after a 101, 204/304/HEAD responses have
//! no body, close-delimited and 101 responses are not keep-alive.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_fuzz::{Client, Control, limits, run_split_and_whole};

fuzz_target!(|data: &[u8]| {
    let mut c = Control::new(data);
    let flags = c.byte();
    let head_bits = c.byte();
    let limits = limits(c.byte());
    let n = usize::from(c.byte() % 8);
    let plan = c.bytes(n);
    let message = c.rest();
    let heads: Vec<bool> = (0..8).map(|i| head_bits >> i & 1 == 1).collect();
    run_split_and_whole(
        || Client::new(limits, &heads),
        message,
        plan,
        flags & 1 == 0,
    );
});
