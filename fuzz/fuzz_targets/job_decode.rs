//! Job message bodies through the decoder every delivery meets first; a valid job then
//! through what the worker reads of it (identity, redaction, the vendor's field types).
#![no_main]

use libfuzzer_sys::fuzz_target;
use provisioner::contract::{JobKind, VendorKey};
use provisioner::vendors::{clienttoolbox, glance, netsapiens};

fuzz_target!(|data: &[u8]| {
    let Ok(job) = provisioner::job::decode(data) else { return };
    let _ = job.identity();
    let _ = job.user.redacted();
    if job.kind != JobKind::CreateUser {
        // An update's or a named user's own parse, on whatever decoding let through.
        let _ = match (job.kind, job.vendor) {
            (JobKind::UpdateUser, VendorKey::Glance) => {
                glance::UserChange::parse(&job.user, &glance::Rules::default()).map(|_| ())
            }
            (JobKind::UpdateUser, VendorKey::Netsapiens) => netsapiens::UserChange::parse(&job.user).map(|_| ()),
            (JobKind::UpdateUser, VendorKey::Clienttoolbox) => {
                clienttoolbox::fields::UserChange::parse(&job.user).map(|_| ())
            }
            (_, VendorKey::Glance) => glance::UserRef::parse(&job.user).map(|_| ()),
            (_, VendorKey::Netsapiens) => netsapiens::UserRef::parse(&job.user).map(|_| ()),
            (_, VendorKey::Clienttoolbox) => clienttoolbox::fields::UserRef::parse(&job.user).map(|_| ()),
        };
        return;
    }
    // Decoding applied the vendor's rules, so the adapter's own parse must accept the job.
    let parsed = match job.vendor {
        VendorKey::Glance => glance::NewUser::parse(&job.user, &glance::Rules::default()).map(|_| ()),
        VendorKey::Netsapiens => netsapiens::NewUser::parse(&job.user).map(|_| ()),
        VendorKey::Clienttoolbox => clienttoolbox::NewUser::parse(&job.user).map(|_| ()),
    };
    assert!(parsed.is_ok(), "a decoded job its adapter refuses: {parsed:?}");
});
