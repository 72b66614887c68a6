//! The outbound-path probe: one STS `GetCallerIdentity` through the relay over TLS.
//!
//! The call is signed with a fixed, worthless key, never with anything the enclave holds. Real
//! AWS answers `InvalidClientTokenId`; the simulator answers with an identity. Either answer
//! proves that the tunnel, the relay policy and TLS trust all work.

use crate::https::{AwsHttpClient, find_refusal};
use aws_credential_types::Credentials;
use aws_sdk_sts::config::{BehaviorVersion, Region};
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use nitrosync_shared::control::ProbeReport;
use std::time::Instant;

/// The probe's access key id: recognisable in AWS CloudTrail, valid for nothing.
const PROBE_ACCESS_KEY: &str = "AKIANITROSYNCPROBE00";

/// Calls STS in `region` and reports what came back.
pub async fn probe_sts(http: &AwsHttpClient, region: &str) -> ProbeReport {
    let host = format!("sts.{region}.amazonaws.com");
    let config = aws_sdk_sts::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .http_client(http.clone())
        .credentials_provider(Credentials::new(
            PROBE_ACCESS_KEY,
            "nitrosync-probe-not-a-secret",
            None,
            None,
            "nitrosync-probe",
        ))
        .build();
    let client = aws_sdk_sts::Client::from_conf(config);
    let started = Instant::now();
    let result = client.get_caller_identity().send().await;
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut report = ProbeReport {
        host,
        reached: false,
        account: None,
        aws_error: None,
        failure: None,
        elapsed_ms,
    };
    match result {
        Ok(out) => {
            report.reached = true;
            report.account = out.account().map(str::to_owned);
        }
        Err(SdkError::ServiceError(e)) => {
            report.reached = true;
            report.aws_error = Some(e.err().code().unwrap_or("unknown").to_owned());
        }
        Err(SdkError::ResponseError(e)) => {
            report.reached = true;
            report.failure = Some(format!("unreadable response: {e:?}"));
        }
        Err(e) => {
            report.failure = Some(match find_refusal(&e) {
                Some(r) => r.to_string(),
                None => crate::sync::errors::chain(&e),
            });
        }
    }
    report
}
