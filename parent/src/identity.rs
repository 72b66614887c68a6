//! The enclave's sealed identity, from the parent's side: after every (re)connect, hand the
//! enclave the identity stored for the configured KMS key (or nothing, the first time) with the
//! instance role's credentials, and store what a first start sealed.
//!
//! Nothing here is secret: the blob opens only inside an attested enclave of an image the key's
//! policy names, and the credentials only authorise KMS calls whose answers are encrypted to the
//! enclave. The store keeps the first identity written for a key and never replaces it, so every
//! later start, and a second parent sharing the store, hands out the same one.

use crate::control::EnclaveClient;
use crate::store::Store;
use nitrosync_shared::ErrorCode;
use nitrosync_shared::control::{
    AwsCredentials, ControlError, RequestBody, ResponseBody, RotateRequest, RotationStep,
    SealedIdentity, UnsealReport, UnsealRequest,
};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// The instance role's credentials: the standard environment variables when set, else the
/// EC2 instance metadata service (IMDSv2).
///
/// # Errors
///
/// Names what is missing, or what IMDS answered.
pub async fn credentials() -> Result<AwsCredentials, String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        (Some(access_key_id), Some(secret_access_key)) => Ok(AwsCredentials {
            access_key_id,
            secret_access_key,
            session_token: var("AWS_SESSION_TOKEN"),
        }),
        (Some(_), None) | (None, Some(_)) => {
            Err("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together".into())
        }
        (None, None) => {
            let endpoint = var("AWS_EC2_METADATA_SERVICE_ENDPOINT")
                .unwrap_or_else(|| IMDS_ENDPOINT.to_owned());
            imds_credentials(&endpoint).await.map_err(|e| {
                format!("no AWS credentials for the enclave's KMS calls: AWS_ACCESS_KEY_ID is not set, and the instance metadata service at {endpoint} failed: {e}")
            })
        }
    }
}

/// IMDS's address on EC2.
pub const IMDS_ENDPOINT: &str = "http://169.254.169.254";

/// Time allowed for each IMDS request.
const IMDS_TIMEOUT: Duration = Duration::from_secs(2);

/// Largest IMDS answer read.
const IMDS_MAX_BODY: usize = 64 * 1024;

async fn imds_call(
    authority: &str,
    method: http::Method,
    path: &str,
    header: (&str, &str),
) -> Result<String, String> {
    use http_body_util::{BodyExt as _, Empty, Limited};
    let call = async {
        let stream = tokio::net::TcpStream::connect(authority)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| format!("HTTP handshake: {e}"))?;
        tokio::spawn(conn);
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, authority)
            .header(header.0, header.1)
            .body(Empty::<bytes::Bytes>::new())
            .map_err(|e| e.to_string())?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("{path}: {e}"))?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), IMDS_MAX_BODY)
            .collect()
            .await
            .map_err(|e| format!("{path}: {e}"))?
            .to_bytes();
        if !status.is_success() {
            return Err(format!("{path}: HTTP {status}"));
        }
        String::from_utf8(body.to_vec()).map_err(|_| format!("{path}: not UTF-8"))
    };
    tokio::time::timeout(IMDS_TIMEOUT, call)
        .await
        .map_err(|_| format!("{path}: no answer within {IMDS_TIMEOUT:?}"))?
}

/// IMDSv2: a session token, the instance profile's role name, then its credentials.
async fn imds_credentials(endpoint: &str) -> Result<AwsCredentials, String> {
    let authority = endpoint
        .strip_prefix("http://")
        .map(|a| a.trim_end_matches('/'))
        .filter(|a| !a.is_empty() && !a.contains('/'))
        .ok_or_else(|| format!("{endpoint:?} is not http://host[:port]"))?;
    let authority = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let token = imds_call(
        &authority,
        http::Method::PUT,
        "/latest/api/token",
        ("x-aws-ec2-metadata-token-ttl-seconds", "300"),
    )
    .await?;
    let token = token.trim();
    let auth = ("x-aws-ec2-metadata-token", token);
    let base = "/latest/meta-data/iam/security-credentials/";
    let roles = imds_call(&authority, http::Method::GET, base, auth).await?;
    let role = roles
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .ok_or("the instance has no instance profile (no IAM role)")?;
    if !role
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
    {
        return Err(format!("IMDS named an invalid role {role:?}"));
    }
    let body = imds_call(
        &authority,
        http::Method::GET,
        &format!("{base}{role}"),
        auth,
    )
    .await?;
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Answer {
        code: Option<String>,
        access_key_id: Option<String>,
        secret_access_key: Option<String>,
        token: Option<String>,
    }
    let a: Answer =
        serde_json::from_str(&body).map_err(|e| format!("role {role}: not JSON ({e})"))?;
    if a.code.as_deref().is_some_and(|c| c != "Success") {
        return Err(format!("role {role}: IMDS answered Code {:?}", a.code));
    }
    match (a.access_key_id, a.secret_access_key) {
        (Some(access_key_id), Some(secret_access_key)) => Ok(AwsCredentials {
            access_key_id,
            secret_access_key,
            session_token: a.token,
        }),
        _ => Err(format!("role {role}: no AccessKeyId/SecretAccessKey")),
    }
}

/// One attempt: read the stored identity, send `Unseal`, store a new one.
async fn unseal_once(
    client: &EnclaveClient,
    store: &Arc<Store>,
    key_arn: &str,
) -> Result<(), String> {
    let credentials = credentials().await?;
    let stored = {
        let (store, arn) = (store.clone(), key_arn.to_owned());
        tokio::task::spawn_blocking(move || store.sealed_identity(&arn))
            .await
            .map_err(|e| format!("the store task failed: {e}"))?
            .map_err(|e| format!("cannot read the sealed identity: {e}"))?
    };
    let sealed = match stored {
        Some(bytes) => Some(SealedIdentity::from_bytes(&bytes).map_err(|e| {
            format!(
                "the stored sealed identity for {key_arn} does not parse ({e}); it is kept as it is"
            )
        })?),
        None => None,
    };
    let answer = client
        .request(RequestBody::Unseal(UnsealRequest {
            key_arn: key_arn.to_owned(),
            credentials,
            sealed,
        }))
        .await
        .map_err(|e| format!("{}: {}", e.code, e.message))?;
    let report = match answer {
        ResponseBody::Unsealed(r) => r,
        ResponseBody::Error(e) => return Err(format!("{}: {}", e.code, e.message)),
        other => return Err(format!("unexpected answer to Unseal: {other:?}")),
    };
    store_report(store, key_arn, &report.sealed).await?;
    info!(
        key_arn,
        created = report.created,
        images = %report.images.join(","),
        "enclave identity unsealed"
    );
    Ok(())
}

/// Stores a sealed identity the enclave answered with (kept if it is the first, or of a
/// higher generation than the stored one); warns when another one stays stored.
async fn store_report(
    store: &Arc<Store>,
    key_arn: &str,
    sealed: &SealedIdentity,
) -> Result<(), String> {
    let bytes = sealed.to_bytes();
    let (store2, arn, generation) = (store.clone(), key_arn.to_owned(), sealed.generation);
    let mine = bytes.clone();
    let kept = tokio::task::spawn_blocking(move || {
        store2.store_sealed_identity(&arn, &mine, generation, crate::scheduler::now_ms())
    })
    .await
    .map_err(|e| format!("the store task failed: {e}"))?
    .map_err(|e| format!("cannot store the sealed identity: {e}"))?;
    if kept != bytes {
        warn!(
            key_arn,
            generation,
            "another identity for this key is stored (first start elsewhere, or a newer rotation); restart the enclave so that it unseals the stored one"
        );
    }
    Ok(())
}

/// One rotation step: sends `Rotate` with the instance role's credentials and stores the
/// re-sealed identity before answering.
///
/// # Errors
///
/// The control error, or a store or credentials failure as `InternalServiceError`.
pub async fn rotate(
    client: &EnclaveClient,
    store: &Arc<Store>,
    key_arn: &str,
    step: RotationStep,
    bundle_key_grace_s: u64,
) -> Result<UnsealReport, ControlError> {
    let internal = |message: String| ControlError {
        code: ErrorCode::InternalServiceError,
        message,
    };
    let credentials = credentials().await.map_err(internal)?;
    let answer = client
        .request(RequestBody::Rotate(RotateRequest {
            step,
            key_arn: key_arn.to_owned(),
            credentials,
            bundle_key_grace_s,
        }))
        .await?;
    let report = match answer {
        ResponseBody::Unsealed(r) => r,
        ResponseBody::Error(e) => return Err(e),
        other => return Err(internal(format!("unexpected answer to Rotate: {other:?}"))),
    };
    store_report(store, key_arn, &report.sealed)
        .await
        .map_err(internal)?;
    info!(key_arn, step = ?step, generation = report.sealed.generation, "identity rotation step stored");
    Ok(report)
}

/// After every connect, unseals the enclave's identity, retrying with capped backoff until it
/// works, the connection changes or `shutdown`.
pub(crate) async fn unseal_on_connect(
    client: EnclaveClient,
    store: Arc<Store>,
    key_arn: String,
    shutdown: CancellationToken,
) {
    let mut connects = client.subscribe_connects();
    // A connect that happened before this task subscribed still counts.
    connects.mark_changed();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = connects.changed() => if changed.is_err() { return },
        }
        // Before the first connect there is nobody to unseal; the connect wakes this up.
        if !client.state().connected {
            continue;
        }
        let mut backoff = Duration::from_secs(1);
        loop {
            match unseal_once(&client, &store, &key_arn).await {
                Ok(()) => break,
                Err(why) => {
                    error!(key_arn, error = %why, retry_in_s = backoff.as_secs(), "cannot unseal the enclave's identity")
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                // A new connection starts over at once.
                _ = connects.changed() => { connects.mark_changed(); break; }
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(60));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loopback server that answers IMDSv2's three requests as EC2 does, and checks the
    /// token is sent back.
    async fn imds(role_answer: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    move |req: http::Request<hyper::body::Incoming>| async move {
                        let token_ok = req
                            .headers()
                            .get("x-aws-ec2-metadata-token")
                            .is_some_and(|t| t == "tok");
                        let (status, body) = match (req.method().as_str(), req.uri().path()) {
                            ("PUT", "/latest/api/token") => (200, "tok"),
                            ("GET", "/latest/meta-data/iam/security-credentials/") if token_ok => {
                                (200, "parent-role\n")
                            }
                            ("GET", "/latest/meta-data/iam/security-credentials/parent-role")
                                if token_ok =>
                            {
                                (200, role_answer)
                            }
                            _ => (401, ""),
                        };
                        Ok::<_, std::convert::Infallible>(
                            http::Response::builder()
                                .status(status)
                                .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                                .unwrap(),
                        )
                    },
                );
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
                );
            }
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn imds_v2_credentials() {
        let endpoint = imds(
            r#"{"Code":"Success","Type":"AWS-HMAC","AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"s","Token":"t","Expiration":"2026-12-07T12:00:00Z"}"#,
        )
        .await;
        let c = imds_credentials(&endpoint).await.unwrap();
        assert_eq!(c.access_key_id, "ASIAEXAMPLE");
        assert_eq!(c.session_token.as_deref(), Some("t"));
        assert!(!format!("{c:?}").contains("\"s\""));

        let endpoint = imds(r#"{"Code":"Failure"}"#).await;
        let e = imds_credentials(&endpoint).await.unwrap_err();
        assert!(e.contains("Failure"), "{e}");
        let e = imds_credentials("http://127.0.0.1:1").await.unwrap_err();
        assert!(e.contains("cannot connect"), "{e}");
        assert!(imds_credentials("https://x/y").await.is_err());
    }
}
