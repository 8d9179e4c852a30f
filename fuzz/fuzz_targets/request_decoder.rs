//! The request decoder over arbitrary bytes, fed in arbitrary pieces and then at EOF.
//!
//! Input: `[flags, limits, n, plan[n]..., message...]`. Checks (in `weir_fuzz::run`): no panic,
//! no stall, bytes consumed never exceed what was fed, `Data` never empty and within a message,
//! poisoned after an error, idle after `End`, every accepted request re-encodes to one that
//! decodes the same; and the split run agrees with the whole run, error included.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_fuzz::{Control, Server, limits, run_split_and_whole};

fuzz_target!(|data: &[u8]| {
    let mut c = Control::new(data);
    let flags = c.byte();
    let limits = limits(c.byte());
    let n = usize::from(c.byte() % 8);
    let plan = c.bytes(n);
    let message = c.rest();
    run_split_and_whole(|| Server::new(limits), message, plan, flags & 1 == 0);
});
