//! `spend internal credential <caller>`: a credential between services.
//! The caller keeps the token; the services it calls are given only its
//! digest, so none of them holds anything it could call another with.

use std::process::ExitCode;

use spend_proto::internal::{Caller, digest};

use crate::InternalCaller;

pub fn credential(caller: InternalCaller) -> anyhow::Result<ExitCode> {
    let caller = match caller {
        InternalCaller::Gateway => Caller::Gateway,
        InternalCaller::Approval => Caller::Approval,
        InternalCaller::Operator => Caller::Operator,
        InternalCaller::Auditor => Caller::Auditor,
    };
    let token = spend_credentials::random_hex(32)?;
    let serves = match caller {
        Caller::Gateway => "the policy service and the executor",
        Caller::Approval => "the executor",
        Caller::Operator => "the policy service, the executor and the ledger",
        Caller::Auditor => "the ledger",
    };
    eprintln!("# The {caller}'s credential. The token goes to the {caller} only (a secret);");
    eprintln!("# the digest goes to {serves}, which keep nothing secret of it.");
    println!("SPEND__INTERNAL__TOKEN={token}");
    println!("SPEND__INTERNAL__CALLERS__{}={}", caller.name().to_uppercase(), digest(&token));
    Ok(ExitCode::SUCCESS)
}
