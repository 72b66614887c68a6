//! The tenant-facing commands: key, destinations, pushing environments, bundles and IAM.

pub mod dotenv;
pub mod iam;
pub mod key;

use crate::{
    AttestationArgs, BundleCommand, CliError, CreateArgs, DeletePolicyArg, EXIT_FAILED, EnvCommand,
    TenantCommand, fail, print_json, report,
};
use key as tenant;
use nitrosync_api::records::HistoryRecord;
use nitrosync_api::{
    ApiClient, AttestRequest, AttestationReply, EnclaveDescription, RequestSigner, SubmitReply,
    to_hex,
};
use nitrosync_attestation::{Policy, TrustRoot};
use nitrosync_bundle::{SecretValue, TenantKey, Variables};
use nitrosync_shared::bundle::{
    DeletePolicy, DestinationConfig, Operation, SealedBundle, Terms, saml_subject,
};
use nitrosync_shared::control::{RuntimeMode, SyncReport};
use nitrosync_shared::pcr::PcrPin;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// `~/.config/nitrosync`, or `./.nitrosync` without a home directory.
pub fn default_tenant_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".config/nitrosync"))
        .unwrap_or_else(|| PathBuf::from(".nitrosync"))
}

pub(crate) fn user(e: impl std::fmt::Display) -> CliError {
    fail(EXIT_FAILED, e.to_string())
}

/// Signs tenant API requests with the tenant key; the key never leaves this process.
#[derive(Debug)]
pub(crate) struct KeySigner(pub(crate) TenantKey);

impl RequestSigner for KeySigner {
    fn tenant(&self) -> [u8; 32] {
        self.0.public()
    }

    fn sign(&self, parts: &nitrosync_shared::request_auth::RequestParts<'_>) -> [u8; 64] {
        self.0.sign_request(parts)
    }
}

pub(crate) fn load_key(dir: &Path) -> Result<TenantKey, CliError> {
    tenant::load(dir).map_err(user)
}

pub fn tenant(c: TenantCommand, dir: &Path) -> Result<(), CliError> {
    match c {
        TenantCommand::Init => {
            let public = tenant::init(dir).map_err(user)?;
            println!(
                "created {} (mode 0600)",
                dir.join(tenant::KEY_FILE).display()
            );
            println!("tenant public key {}", to_hex(&public));
            Ok(())
        }
    }
}

fn parse_tags(tags: &[String]) -> Result<BTreeMap<String, String>, CliError> {
    tags.iter()
        .map(|t| {
            t.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| user(format!("--tag {t:?}: expected KEY=VALUE")))
        })
        .collect()
}

pub(crate) fn create(a: CreateArgs, dir: &Path) -> Result<(), CliError> {
    let key = load_key(dir)?;
    let delete_policy = match (a.delete_policy, a.recovery_days) {
        (DeletePolicyArg::Retain, None) => DeletePolicy::Retain,
        (DeletePolicyArg::Delete, days) => DeletePolicy::Delete {
            recovery_days: Some(days.unwrap_or(7)),
        },
        (DeletePolicyArg::ForceDelete, None) => DeletePolicy::Delete {
            recovery_days: None,
        },
        (_, Some(_)) => return Err(user("--recovery-days goes with --delete-policy delete")),
    };
    let d = DestinationConfig {
        id: a.id,
        region: a.region,
        secret_name: a.secret_name,
        role_arn: a.role_arn,
        saml_provider_arn: a.saml_provider_arn,
        kms_key_id: a.kms_key_id,
        tags: parse_tags(&a.tags)?,
        delete_policy,
    };
    let path = tenant::save_destination(dir, &d, a.force).map_err(user)?;
    let subject = saml_subject(&key.public(), &d.id);
    if a.json {
        return print_json(
            &serde_json::json!({"destination": d, "saml_subject": subject, "file": path}),
        );
    }
    println!("saved destination {} to {}", d.id, path.display());
    println!("SAML subject: {subject}");
    println!("Pin it in the role's trust policy (saml:sub), e.g. with:");
    println!(
        "  nitrosync iam template --destination {} --format cloudformation",
        d.id
    );
    Ok(())
}

/// Reads the environment once (a file, a pipe, or standard input for `-`) and checks it from
/// that one copy: an empty environment is refused unless `allow_empty` (it would empty the
/// secret), and one whose JSON passes AWS's 65,536 bytes is refused before anything is sealed.
fn read_env(path: &Path, allow_empty: bool) -> Result<Variables, CliError> {
    use std::io::Read as _;
    let name = if path == Path::new("-") {
        "standard input".to_owned()
    } else {
        path.display().to_string()
    };
    let mut text = zeroize::Zeroizing::new(String::new());
    let read = if path == Path::new("-") {
        std::io::stdin().lock().read_to_string(&mut text)
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut text))
    };
    read.map_err(|e| user(format!("cannot read {name}: {e}")))?;
    let map = dotenv::parse(&text).map_err(|e| user(format!("{name}: {e}")))?;
    if map.is_empty() && !allow_empty {
        return Err(user(format!(
            "{name} holds no variable: pushing it would empty the secret (pass --allow-empty to do that)"
        )));
    }
    let vars = Variables::from_map(
        map.into_iter()
            .map(|(k, v)| (k, SecretValue::new(v)))
            .collect(),
    );
    let json_len = nitrosync_bundle::render_json(&vars).len();
    if json_len > nitrosync_shared::bundle::MAX_SECRET_BYTES {
        return Err(user(format!(
            "{name}: the secret's JSON would be {json_len} bytes, more than the {} AWS accepts (MaximumSecretSizeExceeded)",
            nitrosync_shared::bundle::MAX_SECRET_BYTES
        )));
    }
    Ok(vars)
}

fn policy(
    args: &AttestationArgs,
    nonce: Option<Vec<u8>>,
    max_age: Duration,
) -> Result<Policy, CliError> {
    let mut p = Policy::new().with_max_age(max_age);
    let mut pins: Vec<PcrPin> = args.pcrs.clone();
    if let Ok(pcr0) = std::env::var("NITROSYNC_EXPECT_PCR0") {
        pins.push(
            format!("0={pcr0}")
                .parse()
                .map_err(|e| user(format!("NITROSYNC_EXPECT_PCR0: {e}")))?,
        );
    }
    for pin in pins {
        p = p.with_pcr(pin.index, pin.value);
    }
    if let Some(n) = nonce {
        p = p.with_nonce(n);
    }
    Ok(p)
}

/// The trust root: `--root`, else the AWS root, or in simulator mode the simulator root the
/// daemon published next to its admin socket (said on stderr).
fn root(
    args: &AttestationArgs,
    api: &ApiClient,
    simulator: bool,
) -> Result<(TrustRoot, Option<String>), CliError> {
    let (path, note) = match (&args.root, simulator) {
        (Some(p), _) => (p.clone(), None),
        (None, false) => return Ok((TrustRoot::aws_nitro_g1(), None)),
        (None, true) => {
            let socket = api.socket().ok_or_else(|| {
                user(
                    "simulator mode: pass --root FILE, the simulator root (over --endpoint the CLI has no admin socket to find it beside)",
                )
            })?;
            let p = socket
                .parent()
                .map(|d| d.join(nitrosync_api::SIM_ROOT_FILE))
                .unwrap_or_else(|| nitrosync_api::SIM_ROOT_FILE.into());
            let note = format!(
                "simulator mode: verified against the simulator root {}",
                p.display()
            );
            (p, Some(note))
        }
    };
    let bytes = std::fs::read(&path)
        .map_err(|e| user(format!("cannot read root {}: {e}", path.display())))?;
    let root = TrustRoot::from_pem_or_der(&bytes)
        .map_err(|e| user(format!("root {}: {e}", path.display())))?;
    Ok((root, note))
}

/// Fetches a fresh document with our own nonce, verifies it, and returns the attested key.
pub(crate) async fn attested_key(
    api: &ApiClient,
    args: &AttestationArgs,
) -> Result<[u8; 32], CliError> {
    let desc: EnclaveDescription = api
        .call(
            http::Method::GET,
            nitrosync_api::paths::ENCLAVE_DESCRIBE,
            None,
        )
        .await?;
    let mut nonce = vec![0u8; 32];
    getrandom::fill(&mut nonce).map_err(user)?;
    let body = serde_json::to_vec(&AttestRequest {
        nonce: Some(to_hex(&nonce)),
    })
    .map_err(user)?;
    let a: AttestationReply = api
        .call(
            http::Method::POST,
            nitrosync_api::paths::ENCLAVE_ATTEST,
            Some(body),
        )
        .await?;
    use base64::Engine as _;
    let doc = base64::engine::general_purpose::STANDARD
        .decode(&a.document)
        .map_err(user)?;
    let simulator = desc.description.mode == RuntimeMode::Simulator;
    {
        let (root, note) = root(args, api, simulator)?;
        let key = key_from_document(
            &doc,
            &root,
            &policy(args, Some(nonce), Duration::from_secs(300))?,
        )?;
        if let Some(note) = note {
            eprintln!("{note}");
        }
        Ok(key)
    }
}

fn key_from_document(doc: &[u8], root: &TrustRoot, policy: &Policy) -> Result<[u8; 32], CliError> {
    let v = nitrosync_attestation::verify(doc, root, policy, SystemTime::now()).map_err(|e| {
        fail(
            EXIT_FAILED,
            format!("the enclave's attestation failed verification: {e}"),
        )
    })?;
    v.public_key
        .as_deref()
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
        .ok_or_else(|| {
            fail(
                EXIT_FAILED,
                "the attestation document carries no 32-byte bundle key",
            )
        })
}

/// Versions are the sealing time in milliseconds: increasing without any state on the tenant's side.
fn next_version() -> u64 {
    nitrosync_shared::unix_ms(SystemTime::now())
}

fn seal(
    dir: &Path,
    destination: &str,
    vars: &Variables,
    enclave_key: &[u8; 32],
) -> Result<SealedBundle, CliError> {
    let version = next_version();
    seal_terms(
        dir,
        destination,
        vars,
        Terms::write(version, version),
        enclave_key,
    )
}

fn seal_terms(
    dir: &Path,
    destination: &str,
    vars: &Variables,
    terms: Terms,
    enclave_key: &[u8; 32],
) -> Result<SealedBundle, CliError> {
    let key = load_key(dir)?;
    let d = tenant::load_destination(dir, destination).map_err(user)?;
    nitrosync_bundle::seal(
        &key,
        enclave_key,
        d,
        terms,
        vars,
        &mut getrandom::rand_core::UnwrapErr(getrandom::SysRng),
    )
    .map_err(|e| user(format!("cannot seal: {e}")))
}

/// `destination test` and `destination delete`: the tenant signs the operation (a test for the
/// next few minutes; a delete as a tombstone version), after checking the enclave's attestation,
/// and the daemon runs it at once.
pub(crate) async fn signed_operation(
    api: &ApiClient,
    dir: &Path,
    id: &str,
    operation: Operation,
    attestation: &AttestationArgs,
) -> Result<SyncReport, CliError> {
    load_key(dir)?;
    tenant::load_destination(dir, id).map_err(user)?;
    let enclave_key = attested_key(api, attestation).await?;
    let version = next_version();
    let terms = match operation {
        Operation::Delete => Terms::delete(version, version),
        Operation::TestConnection => Terms::test_connection(version, version),
        Operation::Write => Terms::write(version, version),
    };
    let bundle = seal_terms(dir, id, &Variables::default(), terms, &enclave_key)?;
    let bytes = nitrosync_shared::frame::encode_payload(&bundle).map_err(user)?;
    let action = if operation == Operation::Delete {
        "delete"
    } else {
        "test"
    };
    let path = format!(
        "{}/{action}",
        nitrosync_api::paths::destination(&bundle.header.tenant_key, id)
    );
    Ok(api
        .call_with(http::Method::POST, &path, Some(bytes), "application/cbor")
        .await?)
}

async fn submit(api: &ApiClient, bundle: Vec<u8>, wait: bool, json: bool) -> Result<(), CliError> {
    let reply: SubmitReply = api
        .call_with(
            http::Method::POST,
            nitrosync_api::paths::BUNDLES,
            Some(bundle),
            "application/cbor",
        )
        .await?;
    if !wait {
        if json {
            return print_json(&reply);
        }
        println!("submitted {} version {}", reply.destination, reply.version);
        return Ok(());
    }
    let path = format!(
        "/v1/destinations/{}/{}/history?limit=5",
        reply.tenant, reply.destination
    );
    let started = Instant::now();
    let mut spin = 0usize;
    loop {
        let h: Vec<HistoryRecord> = api.call(http::Method::GET, &path, None).await?;
        if let Some(r) = h
            .iter()
            .find(|r| r.version >= reply.version && r.error.as_ref().is_none_or(|e| !e.retryable))
        {
            if !json {
                eprint!("\r{:70}\r", "");
            }
            let rep = SyncReport {
                destination: reply.destination.clone(),
                version: r.version,
                mode: r.mode,
                outcome: r.outcome,
                error: r.error.clone(),
                secret_arn: r.secret_arn.clone(),
                aws_version_id: r.aws_version_id.clone(),
                timings: r.timings.clone(),
            };
            return report(&rep, json);
        }
        if started.elapsed() > Duration::from_secs(120) {
            return Err(fail(
                EXIT_FAILED,
                format!(
                    "no sync report for version {} after 120 s; see `nitrosync destination history {}`",
                    reply.version, reply.destination
                ),
            ));
        }
        if !json {
            let frames = ['|', '/', '-', '\\'];
            eprint!(
                "\rwaiting for the sync of {} v{} {}",
                reply.destination,
                reply.version,
                frames[spin % 4]
            );
            let _ = std::io::stderr().flush();
            spin += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn env(c: EnvCommand, api: &ApiClient, dir: &Path) -> Result<(), CliError> {
    match c {
        EnvCommand::Push {
            destination,
            file,
            allow_empty,
            wait,
            attestation,
            json,
        } => {
            // Check the local inputs before talking to anyone; the input is read once.
            load_key(dir)?;
            tenant::load_destination(dir, &destination).map_err(user)?;
            let vars = read_env(&file, allow_empty)?;
            let key = attested_key(api, &attestation).await?;
            let bundle = seal(dir, &destination, &vars, &key)?;
            let bytes = nitrosync_shared::frame::encode_payload(&bundle).map_err(user)?;
            submit(api, bytes, wait, json).await
        }
    }
}

pub async fn bundle(c: BundleCommand, api: &ApiClient, dir: &Path) -> Result<(), CliError> {
    match c {
        BundleCommand::Seal {
            destination,
            file,
            allow_empty,
            attestation,
            checks,
            max_age,
            out,
        } => {
            let vars = read_env(&file, allow_empty)?;
            let doc = std::fs::read(&attestation)
                .map_err(|e| user(format!("cannot read {}: {e}", attestation.display())))?;
            let root = match &checks.root {
                Some(_) => root(&checks, api, false)?.0,
                None => TrustRoot::aws_nitro_g1(),
            };
            let key = key_from_document(&doc, &root, &policy(&checks, None, max_age)?)?;
            let bundle = seal(dir, &destination, &vars, &key)?;
            let bytes = nitrosync_shared::frame::encode_payload(&bundle).map_err(user)?;
            std::fs::write(&out, &bytes)
                .map_err(|e| user(format!("cannot write {}: {e}", out.display())))?;
            println!(
                "sealed {} version {} to {}",
                destination,
                bundle.header.version,
                out.display()
            );
            Ok(())
        }
        BundleCommand::Submit { file, wait, json } => {
            let bytes = std::fs::read(&file)
                .map_err(|e| user(format!("cannot read {}: {e}", file.display())))?;
            // Checked here for a clear error; submitted as the bytes the tenant signed.
            nitrosync_shared::frame::decode_payload::<SealedBundle>(&bytes)
                .map_err(|e| user(format!("{} is not a sealed bundle: {e}", file.display())))?;
            submit(api, bytes, wait, json).await
        }
    }
}
