//! oned's VM and image states (include/VirtualMachine.h, include/Image.h of
//! release-7.4.0) in the neutral phases.

use crate::backend::{ImagePhase, ServerPhase, VolumePhase};

pub const VM_DONE: i64 = 6;
pub const IMAGE_DATABLOCK: i64 = 2;

const VM_STATES: [&str; 12] = [
    "INIT",
    "PENDING",
    "HOLD",
    "ACTIVE",
    "STOPPED",
    "SUSPENDED",
    "DONE",
    "FAILED",
    "POWEROFF",
    "UNDEPLOYED",
    "CLONING",
    "CLONING_FAILURE",
];

/// LCM states that end in `_FAILURE`.
const LCM_FAILURES: [i64; 13] = [36, 37, 38, 39, 40, 41, 42, 44, 46, 47, 48, 49, 50];
/// LCM states on the way to deletion or shut down.
const LCM_GOING: [i64; 5] = [11, 12, 15, 23, 29];

pub fn server_phase(state: i64, lcm: i64, reason: Option<String>) -> ServerPhase {
    match state {
        0 | 1 | 2 | 10 => ServerPhase::Building,
        3 if lcm == 3 => ServerPhase::Active,
        3 if LCM_FAILURES.contains(&lcm) || lcm == 61 => ServerPhase::Error { reason },
        3 if LCM_GOING.contains(&lcm) => ServerPhase::Deleting,
        3 if lcm <= 2 => ServerPhase::Building,
        7 | 11 => ServerPhase::Error { reason },
        _ => ServerPhase::Other,
    }
}

pub fn vm_text(state: i64, lcm: i64) -> String {
    let s = usize::try_from(state)
        .ok()
        .and_then(|i| VM_STATES.get(i))
        .map(|s| s.to_string())
        .unwrap_or_else(|| format!("STATE {state}"));
    if state == 3 {
        format!("{s} (LCM_STATE {lcm})")
    } else {
        s
    }
}

const IMAGE_STATES: [&str; 11] = [
    "INIT",
    "READY",
    "USED",
    "DISABLED",
    "LOCKED",
    "ERROR",
    "CLONE",
    "DELETE",
    "USED_PERS",
    "LOCKED_USED",
    "LOCKED_USED_PERS",
];

pub fn image_text(state: i64) -> String {
    usize::try_from(state)
        .ok()
        .and_then(|i| IMAGE_STATES.get(i))
        .map(|s| s.to_string())
        .unwrap_or_else(|| format!("STATE {state}"))
}

pub fn volume_phase(state: i64, reason: Option<String>) -> VolumePhase {
    match state {
        0 | 4 | 6 => VolumePhase::Creating,
        1 => VolumePhase::Available,
        2 | 8 => VolumePhase::InUse,
        9 | 10 => VolumePhase::Attaching,
        5 => VolumePhase::Error { reason },
        7 => VolumePhase::Deleting,
        _ => VolumePhase::Other,
    }
}

pub fn image_phase(state: i64) -> ImagePhase {
    match state {
        0 => ImagePhase::Queued,
        4 | 6 | 9 | 10 => ImagePhase::Saving,
        1 | 2 | 8 => ImagePhase::Active,
        5 => ImagePhase::Killed,
        7 => ImagePhase::Deleted,
        _ => ImagePhase::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_states() {
        assert_eq!(server_phase(1, 0, None), ServerPhase::Building);
        assert_eq!(server_phase(3, 3, None), ServerPhase::Active);
        assert_eq!(
            server_phase(3, 36, Some("boot".into())),
            ServerPhase::Error {
                reason: Some("boot".into())
            }
        );
        assert_eq!(server_phase(3, 23, None), ServerPhase::Deleting);
        assert_eq!(server_phase(8, 0, None), ServerPhase::Other);
        assert_eq!(vm_text(3, 36), "ACTIVE (LCM_STATE 36)");
        assert_eq!(vm_text(99, 0), "STATE 99");
    }

    #[test]
    fn image_states() {
        assert_eq!(volume_phase(1, None), VolumePhase::Available);
        assert_eq!(volume_phase(8, None), VolumePhase::InUse);
        assert_eq!(image_phase(4), ImagePhase::Saving);
        assert_eq!(image_phase(5), ImagePhase::Killed);
        assert_eq!(image_text(10), "LOCKED_USED_PERS");
    }
}
