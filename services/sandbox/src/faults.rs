//! Faults a test injects into the platform's answers: the next requests
//! failing, writes answered late, and keyed writes disturbed at random
//! (declined, failed before or after applying, answered too late), so the
//! executor's handling of unknown outcomes can be driven and replayed.

use super::*;

/// Faults a test injects: the next `fail_next` requests fail with
/// `status` (429 with `Retry-After: retry_after`), and the next
/// `delay_next` writes are applied, then answered `delay_ms` late (a slow
/// platform, or a timeout when that is longer than the caller waits).
#[derive(Default)]
pub(crate) struct Faults {
    pub(crate) fail_next: u32,
    pub(crate) status: u16,
    pub(crate) retry_after: Option<u64>,
    /// Only writes fail (reads go through).
    pub(crate) writes_only: bool,
    pub(crate) delay_next: u32,
    pub(crate) delay_ms: u64,
    pub(crate) random: Option<(RandomFaults, u64)>,
    /// Writes disturbed at random so far, by kind.
    pub(crate) disturbed: Disturbed,
}

/// How many keyed writes each random fault disturbed.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub(crate) struct Disturbed {
    pub(crate) decline: u64,
    pub(crate) fail_before: u64,
    pub(crate) fail_after: u64,
    pub(crate) delay: u64,
}

/// Faults drawn at random for the first request of each key (a
/// deterministic sequence from `seed`), each in per-mille: the write
/// refused for good (`402 declined`, kept as the key's answer), a `503`
/// before anything is applied, a `500` after the write was applied, or
/// the write applied and answered `delay_ms` late. After `writes`
/// disturbed keys the platform behaves again.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomFaults {
    pub seed: u64,
    #[serde(default)]
    pub decline: u16,
    #[serde(default)]
    pub fail_before: u16,
    #[serde(default)]
    pub fail_after: u16,
    #[serde(default)]
    pub delay: u16,
    #[serde(default)]
    pub delay_ms: u64,
    pub writes: u32,
}

/// What a random draw does to one keyed write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disturb {
    None,
    Decline,
    FailBefore,
    FailAfter,
    Delay(u64),
}

/// One step of splitmix64: the sandbox's deterministic dice.
pub(crate) fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Faults {
    pub(crate) fn draw(&mut self) -> Disturb {
        let Some((r, state)) = self.random.as_mut() else { return Disturb::None };
        if r.writes == 0 {
            return Disturb::None;
        }
        r.writes -= 1;
        let roll = (splitmix(state) % 1000) as u16;
        let mut edge = 0u16;
        let counts = &mut self.disturbed;
        for (p, d, count) in [
            (r.decline, Disturb::Decline, &mut counts.decline),
            (r.fail_before, Disturb::FailBefore, &mut counts.fail_before),
            (r.fail_after, Disturb::FailAfter, &mut counts.fail_after),
            (r.delay, Disturb::Delay(r.delay_ms), &mut counts.delay),
        ] {
            edge = edge.saturating_add(p);
            if roll < edge {
                *count += 1;
                return d;
            }
        }
        Disturb::None
    }
}
