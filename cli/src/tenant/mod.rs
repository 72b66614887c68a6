//! The tenant-facing commands: key, destinations, pushing environments, bundles and IAM.

pub mod dotenv;
pub mod iam;
pub mod input;
pub mod key;
pub mod trust;
pub(crate) mod wait;

use crate::{
    AttestationArgs, BundleCommand, CliError, CreateArgs, DeletePolicyArg, EnvCommand, Format,
    LocalCode, TenantCommand, fail,
};
use input::EnvSource;
use key as tenant;
use nitrosync_api::{
    ApiClient, AttestRequest, AttestationReply, RequestSigner, SubmitReply, to_hex,
};
use nitrosync_attestation::{Policy, TrustRoot, VerifiedDocument, VerifyError};
use nitrosync_bundle::{TenantKey, Variables};
use nitrosync_shared::bundle::{
    DeletePolicy, DestinationConfig, Operation, SealedBundle, Terms, saml_subject,
};
use nitrosync_shared::control::SyncReport;
use nitrosync_shared::pcr::PcrPin;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// `~/.config/nitrosync`, or `./.nitrosync` without a home directory.
pub fn default_tenant_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".config/nitrosync"))
        .unwrap_or_else(|| PathBuf::from(".nitrosync"))
}

/// A failure of this machine (randomness, encoding) as an `Internal` error.
fn internal(e: impl std::fmt::Display) -> CliError {
    fail(LocalCode::Internal, e.to_string())
}

impl From<tenant::TenantError> for CliError {
    fn from(e: tenant::TenantError) -> Self {
        use tenant::TenantError as E;
        let code = match &e {
            E::NoKey(_) | E::Exists(_) | E::Permissions { .. } | E::BadKey(_) => {
                LocalCode::TenantKey
            }
            E::Io { path, .. } if path.ends_with(tenant::KEY_FILE) => LocalCode::TenantKey,
            _ => LocalCode::DestinationFile,
        };
        fail(code, crate::error_chain(&e))
    }
}

impl From<trust::TrustError> for CliError {
    fn from(e: trust::TrustError) -> Self {
        use trust::TrustError as E;
        let code = match &e {
            E::BadName(_) => LocalCode::InvalidFlag,
            E::BadMeasurements { .. } | E::BadRoot { .. } => LocalCode::LocalFile,
            E::Io { path, .. } if !path.ends_with(trust::TRUST_FILE) => LocalCode::LocalFile,
            _ => LocalCode::TrustStore,
        };
        fail(code, crate::error_chain(&e))
    }
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
    Ok(tenant::load(dir)?)
}

pub fn tenant(c: TenantCommand, dir: &Path, format: Format) -> Result<(), CliError> {
    match c {
        TenantCommand::Init => {
            let public = tenant::init(dir)?;
            if format.is_json() {
                return crate::output::json(&serde_json::json!({
                    "key_file": dir.join(tenant::KEY_FILE),
                    "mode": "0600",
                    "public_key": to_hex(&public),
                }));
            }
            say!(
                "created {} (mode 0600)",
                dir.join(tenant::KEY_FILE).display()
            );
            say!("tenant public key {}", to_hex(&public));
            Ok(())
        }
    }
}

/// `nitrosync trust …`
pub fn trust_command(c: crate::TrustCommand, dir: &Path, format: Format) -> Result<(), CliError> {
    use crate::TrustCommand;
    let json = format.is_json();
    match c {
        TrustCommand::Add { file, name } => {
            let e = trust::add_image(dir, &file, name.as_deref())?;
            if json {
                return crate::output::json(&e);
            }
            let kind = format!("{:?}", e.measurements.kind).to_lowercase();
            say!("trusting {} ({kind} image)", e.name);
            say!("  PCR0 {}", e.measurements.pcr0);
            say!("  PCR1 {}", e.measurements.pcr1);
            say!("  PCR2 {}", e.measurements.pcr2);
            if let Some(p8) = &e.measurements.pcr8 {
                say!("  PCR8 {p8}");
            }
            Ok(())
        }
        TrustCommand::AddRoot { file, name } => {
            let e = trust::add_root(dir, &file, name.as_deref())?;
            if json {
                return crate::output::json(&e);
            }
            say!("trusting root {} (sha256 {})", e.name, e.sha256);
            Ok(())
        }
        TrustCommand::List => {
            let store = trust::load(dir)?;
            if json {
                return crate::output::json(&store);
            }
            if store.images.is_empty() {
                say!("no enclave image is trusted: {}", trust::HOW_TO_PIN);
            }
            for i in &store.images {
                let kind = format!("{:?}", i.measurements.kind).to_lowercase();
                say!(
                    "image {:<24} {kind:<9} PCR0 {} (added {})",
                    i.name,
                    i.measurements.pcr0,
                    i.added
                );
            }
            say!("root  {:<24} built in (AWS Nitro Enclaves Root G1)", "aws");
            for r in &store.roots {
                say!(
                    "root  {:<24} sha256 {} (added {})",
                    r.name,
                    r.sha256,
                    r.added
                );
            }
            Ok(())
        }
        TrustCommand::Remove { name } => {
            trust::remove(dir, &name)?;
            if json {
                return crate::output::json(&serde_json::json!({"removed": name}));
            }
            say!("no longer trusting {name}");
            Ok(())
        }
    }
}

fn parse_tags(tags: &[String]) -> Result<BTreeMap<String, String>, CliError> {
    tags.iter()
        .map(|t| {
            t.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| {
                    fail(
                        LocalCode::InvalidFlag,
                        format!("--tag {t:?}: expected KEY=VALUE"),
                    )
                })
        })
        .collect()
}

/// `destination create`: checks the flags (a region AWS has: exit 2 naming the flag otherwise),
/// saves the destination, and, when the daemon answers, warns on stderr if its relay does not
/// allow the region (not an error: the operator may add it later).
pub(crate) async fn create(
    a: CreateArgs,
    dir: &Path,
    api: Option<&ApiClient>,
    format: Format,
) -> Result<(), CliError> {
    let region = crate::region_or_default(a.region).await?;
    let key = load_key(dir)?;
    let delete_policy = match (a.delete_policy, a.recovery_days) {
        (DeletePolicyArg::Retain, None) => DeletePolicy::Retain,
        (DeletePolicyArg::Delete, days) => DeletePolicy::Delete {
            recovery_days: Some(days.unwrap_or(7)),
        },
        (DeletePolicyArg::ForceDelete, None) => DeletePolicy::Delete {
            recovery_days: None,
        },
        (_, Some(_)) => {
            return Err(fail(
                LocalCode::InvalidFlag,
                "--recovery-days goes with --delete-policy delete",
            ));
        }
    };
    let d = DestinationConfig {
        id: a.id,
        region,
        secret_name: a.secret_name,
        role_arn: a.role_arn,
        saml_provider_arn: a.saml_provider_arn,
        kms_key_id: a.kms_key_id,
        tags: parse_tags(&a.tags)?,
        delete_policy,
    };
    // The flags each passed their own check; this is how they fit together (the role and the
    // provider in one account and partition, the region in that partition, the tag count).
    d.validate().map_err(|e| {
        let flag = match e.field.split_once('.') {
            Some(("tags", key)) => format!("--tag {key}"),
            _ if e.field == "tags" => "--tag".to_owned(),
            _ => format!("--{}", e.field.replace('_', "-")),
        };
        fail(LocalCode::InvalidFlag, format!("{flag}: {}", e.reason))
    })?;
    let path = tenant::save_destination(dir, &d, a.force)?;
    if let Some(api) = api
        && let Some(warning) = relay_region_warning(api, &d.region).await
    {
        note!("nitrosync: warning: {warning}");
    }
    let subject = saml_subject(&key.public(), &d.id);
    if format.is_json() {
        return crate::output::json(
            &serde_json::json!({"destination": d, "saml_subject": subject, "file": path}),
        );
    }
    say!("saved destination {} to {}", d.id, path.display());
    say!("SAML subject: {subject}");
    say!("Pin it in the role's trust policy (saml:sub), e.g. with:");
    say!(
        "  nitrosync iam template --destination {} --format cloudformation",
        d.id
    );
    Ok(())
}

/// A warning when the daemon's relay does not allow `region`, from `GET /v1/status` (the relay's
/// configured regions). Nothing when the daemon does not answer within 3 s or does not serve
/// the status to this client (the tenant API serves it only to the operator): the check is a
/// courtesy, and the destination file is the tenant's own.
async fn relay_region_warning(api: &ApiClient, region: &str) -> Option<String> {
    let status = tokio::time::timeout(
        Duration::from_secs(3),
        api.call::<nitrosync_api::Status>(http::Method::GET, nitrosync_api::paths::STATUS, None),
    )
    .await
    .ok()?
    .ok()?;
    let regions = &status.relay.regions;
    if regions.iter().any(|r| r == region) {
        return None;
    }
    Some(format!(
        "the parent's relay does not allow region {region} (its regions: {}): syncs to this destination will fail with RelayRefused until the operator adds {region} to relay.regions in the parent's configuration (or --region on nitrosync-parent) and restarts it",
        if regions.is_empty() {
            "none".to_owned()
        } else {
            regions.join(", ")
        }
    ))
}

/// What an attestation document is checked against: the roots and the trusted images. Built
/// from the command's flags and the tenant's trust store only: nothing the daemon says (its
/// mode, a file beside its socket) decides what is trusted.
pub(crate) struct Trust {
    roots: Vec<(String, TrustRoot)>,
    images: Vec<(String, Vec<PcrPin>)>,
}

/// The roots and images to check against: `--root` alone when given, else the AWS root and the
/// roots of the trust store; `--pcr` (and `NITROSYNC_EXPECT_PCR0`) as one image when given, else
/// the trust store's images. No image at all is an error that says how to pin.
pub(crate) fn trust_for(args: &AttestationArgs, dir: &Path) -> Result<Trust, CliError> {
    let store = trust::load(dir)?;
    let roots = match &args.root {
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| {
                fail(
                    LocalCode::LocalFile,
                    format!("cannot read --root {}: {e}", path.display()),
                )
            })?;
            let root = TrustRoot::from_pem_or_der(&bytes).map_err(|e| {
                fail(
                    LocalCode::LocalFile,
                    format!("--root {}: {e}", path.display()),
                )
            })?;
            vec![(path.display().to_string(), root)]
        }
        None => {
            let mut roots = vec![(
                "AWS Nitro Enclaves Root G1".to_owned(),
                TrustRoot::aws_nitro_g1(),
            )];
            roots.extend(
                store
                    .roots
                    .iter()
                    .filter_map(|r| Some((r.name.clone(), r.root()?))),
            );
            roots
        }
    };
    let mut explicit: Vec<PcrPin> = args.pcrs.clone();
    if let Ok(pcr0) = std::env::var("NITROSYNC_EXPECT_PCR0") {
        explicit.push(format!("0={pcr0}").parse().map_err(|e| {
            fail(
                LocalCode::InvalidFlag,
                format!("NITROSYNC_EXPECT_PCR0: {e}"),
            )
        })?);
    }
    let images = if explicit.is_empty() {
        if store.images.is_empty() {
            return Err(fail(
                LocalCode::AttestationRefused,
                format!(
                    "no enclave image is pinned, so nothing can be sealed or registered: {}",
                    trust::HOW_TO_PIN
                ),
            ));
        }
        store
            .images
            .iter()
            .map(|i| (i.name.clone(), i.pins()))
            .collect()
    } else {
        nitrosync_shared::pcr::check_complete(&explicit).map_err(|e| {
            fail(
                LocalCode::AttestationRefused,
                format!(
                    "--pcr pins too little ({e}): PCR0 alone does not identify an image; {}",
                    trust::HOW_TO_PIN
                ),
            )
        })?;
        vec![("--pcr".to_owned(), explicit)]
    };
    Ok(Trust { roots, images })
}

/// A document that passed: the verified contents, and the names of the root and image it matched.
#[derive(Debug)]
pub(crate) struct Trusted {
    pub(crate) doc: VerifiedDocument,
    pub(crate) image: String,
    pub(crate) root: String,
}

/// Verifies `doc` against `trust`: the chain must start at one of its roots, the document must
/// be fresh (and carry `nonce` when given), and its PCRs must equal one trusted image's.
pub(crate) fn verify_trusted(
    doc: &[u8],
    trust: &Trust,
    nonce: Option<Vec<u8>>,
    max_age: Duration,
) -> Result<Trusted, CliError> {
    let mut policy = Policy::new().with_max_age(max_age);
    if let Some(n) = nonce {
        policy = policy.with_nonce(n);
    }
    let rejected = |e: &dyn std::fmt::Display| {
        fail(
            LocalCode::AttestationRefused,
            format!("the enclave's attestation failed verification: {e}"),
        )
    };
    for (root_name, root) in &trust.roots {
        let v = match nitrosync_attestation::verify(doc, root, &policy, SystemTime::now()) {
            Ok(v) => v,
            Err(VerifyError::RootMismatch) => continue,
            Err(e) => return Err(rejected(&e)),
        };
        let Some((image, _)) = trust
            .images
            .iter()
            .find(|(_, pins)| nitrosync_shared::pcr::all_match(pins, &v.pcrs))
        else {
            let pcr0 = v.pcrs.get(&0).map(|p| to_hex(p)).unwrap_or_default();
            let names: Vec<&str> = trust.images.iter().map(|(n, _)| n.as_str()).collect();
            return Err(rejected(&format!(
                "the enclave runs an image you do not trust (PCR0 {pcr0}); trusted: {}. If the operator upgraded the enclave, check its new measurements.json and `nitrosync trust add` it",
                names.join(", ")
            )));
        };
        check_identity_images(&v, trust).map_err(|e| rejected(&e))?;
        let pcr0 = v.pcrs.get(&0).map(|p| to_hex(p)).unwrap_or_default();
        note!(
            "enclave verified: trusted image {image} (PCR0 {}…), root {root_name}",
            pcr0.get(..16).unwrap_or(&pcr0)
        );
        return Ok(Trusted {
            image: image.clone(),
            root: root_name.clone(),
            doc: v,
        });
    }
    let names: Vec<&str> = trust.roots.iter().map(|(n, _)| n.as_str()).collect();
    Err(rejected(&format!(
        "the document's certificate chain starts at none of the trusted roots ({}); a simulator root is trusted only when you name it: `nitrosync trust add-root sim-root.pem` or --root FILE",
        names.join(", ")
    )))
}

/// A KMS-sealed identity can be unsealed by every image its key's policy names, and the
/// enclave attests that list (checked by it from the policy): each must be an image the tenant
/// trusts, or an image the tenant never vetted could hold the keys its bundles are sealed to.
/// An ephemeral identity (no list) never leaves the enclave that made it.
fn check_identity_images(v: &VerifiedDocument, trust: &Trust) -> Result<(), String> {
    use nitrosync_shared::binding::{AttestedKeys, IdentitySource};
    // A document without readable user_data is refused later, by the metadata binding.
    let Some(keys) = v
        .user_data
        .as_deref()
        .and_then(|u| AttestedKeys::from_user_data(u).ok())
    else {
        return Ok(());
    };
    let Some(IdentitySource::KmsSealed { key_arn, images }) = keys.identity else {
        return Ok(());
    };
    let trusted_pcr0 = |pcr0: &str| {
        trust.images.iter().any(|(_, pins)| {
            pins.iter()
                .any(|p| p.index == 0 && to_hex(&p.value).eq_ignore_ascii_case(pcr0))
        })
    };
    let untrusted: Vec<&String> = images.iter().filter(|i| !trusted_pcr0(i)).collect();
    if images.is_empty() || !untrusted.is_empty() {
        return Err(format!(
            "the enclave's keys are sealed under KMS key {key_arn}, whose policy also releases them to images you do not trust (PCR0 {}); trust every one (`nitrosync trust add`), or ask the operator for a key that names only trusted images",
            untrusted
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(())
}

/// Fetches a fresh document with our own nonce and verifies it against the tenant's trust.
pub(crate) async fn attested(
    api: &ApiClient,
    args: &AttestationArgs,
    dir: &Path,
) -> Result<Trusted, CliError> {
    // Before any network call: no pins, no request.
    let trust = trust_for(args, dir)?;
    let mut nonce = vec![0u8; 32];
    getrandom::fill(&mut nonce).map_err(internal)?;
    let body = serde_json::to_vec(&AttestRequest {
        nonce: Some(to_hex(&nonce)),
    })
    .map_err(internal)?;
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
        .map_err(|e| {
            fail(
                LocalCode::BadAnswer,
                format!("the daemon sent an attestation that is not base64: {e}"),
            )
        })?;
    verify_trusted(&doc, &trust, Some(nonce), Duration::from_secs(300))
}

/// Fetches and verifies a fresh document, and returns the attested bundle key.
pub(crate) async fn attested_key(
    api: &ApiClient,
    args: &AttestationArgs,
    dir: &Path,
) -> Result<[u8; 32], CliError> {
    let t = attested(api, args, dir).await?;
    bundle_key(&t.doc)
}

fn bundle_key(v: &VerifiedDocument) -> Result<[u8; 32], CliError> {
    v.public_key
        .as_deref()
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
        .ok_or_else(|| {
            fail(
                LocalCode::AttestationRefused,
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
    let d = tenant::load_destination(dir, destination)?;
    nitrosync_bundle::seal(
        &key,
        enclave_key,
        d,
        terms,
        vars,
        &mut getrandom::rand_core::UnwrapErr(getrandom::SysRng),
    )
    .map_err(|e| fail(LocalCode::Internal, format!("cannot seal: {e}")))
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
    tenant::load_destination(dir, id)?;
    let enclave_key = attested_key(api, attestation, dir).await?;
    let version = next_version();
    let terms = match operation {
        Operation::Delete => Terms::delete(version, version),
        Operation::TestConnection => Terms::test_connection(version, version),
        Operation::Write => Terms::write(version, version),
    };
    let bundle = seal_terms(dir, id, &Variables::default(), terms, &enclave_key)?;
    let bytes = nitrosync_shared::frame::encode_payload(&bundle).map_err(internal)?;
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

async fn submit(
    api: &ApiClient,
    bundle: Vec<u8>,
    wait: bool,
    format: Format,
) -> Result<(), CliError> {
    let reply: SubmitReply = api
        .call_with(
            http::Method::POST,
            nitrosync_api::paths::BUNDLES,
            Some(bundle),
            "application/cbor",
        )
        .await?;
    if wait {
        return wait::wait(api, &reply, format).await;
    }
    if format.is_json() {
        return crate::output::json(&reply);
    }
    say!("submitted {} version {}", reply.destination, reply.version);
    Ok(())
}

pub async fn env(
    c: EnvCommand,
    api: &ApiClient,
    dir: &Path,
    format: Format,
) -> Result<(), CliError> {
    match c {
        EnvCommand::Push {
            destination,
            file,
            allow_empty,
            wait,
            attestation,
        } => {
            // Check the local inputs before talking to anyone; the input is read once.
            load_key(dir)?;
            tenant::load_destination(dir, &destination)?;
            let vars = input::read_environment(&EnvSource::from_arg(&file), allow_empty)?;
            let key = attested_key(api, &attestation, dir).await?;
            let bundle = seal(dir, &destination, &vars, &key)?;
            let bytes = nitrosync_shared::frame::encode_payload(&bundle).map_err(internal)?;
            submit(api, bytes, wait, format).await
        }
    }
}

pub async fn bundle(
    c: BundleCommand,
    api: &ApiClient,
    dir: &Path,
    format: Format,
) -> Result<(), CliError> {
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
            // As for `env push`: the local files first, then the input, read once.
            load_key(dir)?;
            tenant::load_destination(dir, &destination)?;
            let vars = input::read_environment(&EnvSource::from_arg(&file), allow_empty)?;
            let trust = trust_for(&checks, dir)?;
            let doc = std::fs::read(&attestation).map_err(|e| {
                fail(
                    LocalCode::LocalFile,
                    format!("cannot read {}: {e}", attestation.display()),
                )
            })?;
            let key = bundle_key(&verify_trusted(&doc, &trust, None, max_age)?.doc)?;
            let bundle = seal(dir, &destination, &vars, &key)?;
            let bytes = nitrosync_shared::frame::encode_payload(&bundle).map_err(internal)?;
            std::fs::write(&out, &bytes).map_err(|e| {
                fail(
                    LocalCode::LocalFile,
                    format!("cannot write {}: {e}", out.display()),
                )
            })?;
            if format.is_json() {
                return crate::output::json(&serde_json::json!({
                    "destination": destination,
                    "version": bundle.header.version,
                    "file": out,
                }));
            }
            say!(
                "sealed {} version {} to {}",
                destination,
                bundle.header.version,
                out.display()
            );
            Ok(())
        }
        BundleCommand::Submit { file, wait } => {
            let bytes = std::fs::read(&file).map_err(|e| {
                fail(
                    LocalCode::LocalFile,
                    format!("cannot read {}: {e}", file.display()),
                )
            })?;
            // Checked here for a clear error; submitted as the bytes the tenant signed.
            nitrosync_shared::frame::decode_payload::<SealedBundle>(&bytes).map_err(|e| {
                fail(
                    LocalCode::LocalFile,
                    format!("{} is not a sealed bundle: {e}", file.display()),
                )
            })?;
            submit(api, bytes, wait, format).await
        }
    }
}
