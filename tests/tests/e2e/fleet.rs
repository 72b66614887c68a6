//! Many destinations at once: their configs, their roles in the simulator (one per destination,
//! trusting only its subject), sealed bundles and submits through the admin API.

use nitrosync_api::AdminClient;
use nitrosync_api::SubmitReply;
use nitrosync_bundle::{SecretValue, TenantKey, Variables, seal};
use nitrosync_shared::bundle::{DeletePolicy, DestinationConfig, SealedBundle, saml_subject};
use nitrosync_shared::control::{Description, RequestBody, ResponseBody};
use nitrosync_tests::{EnclaveControl, SimStack, StackOptions, simctl};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;

pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-east-1";

/// A running stack, its admin API, the enclave's description and a tenant.
pub struct Fleet {
    pub dir: tempfile::TempDir,
    pub stack: SimStack,
    pub api: AdminClient,
    pub desc: Description,
    pub tenant: TenantKey,
}

impl Fleet {
    pub async fn start(opts: StackOptions) -> Fleet {
        Self::start_in(tempfile::tempdir().unwrap(), opts).await
    }

    /// Starts with `parent_toml` as the parent's config file and extra enclave arguments.
    pub async fn start_configured(parent_toml: &str, enclave_args: &[&str]) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("parent.toml");
        std::fs::write(&config, parent_toml).unwrap();
        let opts = StackOptions {
            enclave_args: enclave_args.iter().map(|a| a.to_string()).collect(),
            parent_args: vec!["--config".into(), config.to_str().unwrap().into()],
            ..Default::default()
        };
        Self::start_in(dir, opts).await
    }

    async fn start_in(dir: tempfile::TempDir, opts: StackOptions) -> Fleet {
        let stack = SimStack::start_with(dir.path(), REGION, opts)
            .await
            .unwrap();
        let api = AdminClient::new(stack.sockets.admin.clone());
        let mut ctl = EnclaveControl::connect(&stack.sockets.control)
            .await
            .unwrap();
        let ResponseBody::Describe(desc) = ctl.request(RequestBody::Describe).await.unwrap() else {
            panic!("no description")
        };
        let tenant = TenantKey::generate(&mut rng());
        Fleet {
            dir,
            stack,
            api,
            desc,
            tenant,
        }
    }
}

pub fn rng() -> getrandom::rand_core::UnwrapErr<getrandom::SysRng> {
    getrandom::rand_core::UnwrapErr(getrandom::SysRng)
}

/// Destination `{prefix}{i}`, secret `{prefix}/{prefix}{i}`, role `{prefix}-{prefix}{i}`.
pub fn destination(prefix: &str, i: usize) -> DestinationConfig {
    destination_in(ACCOUNT, prefix, i)
}

/// [`destination`] in another AWS account.
pub fn destination_in(account: &str, prefix: &str, i: usize) -> DestinationConfig {
    let id = format!("{prefix}{i}");
    DestinationConfig {
        region: REGION.into(),
        secret_name: format!("{prefix}/{id}"),
        role_arn: format!("arn:aws:iam::{account}:role/{prefix}-{id}"),
        saml_provider_arn: format!("arn:aws:iam::{account}:saml-provider/nitrosync"),
        kms_key_id: None,
        tags: BTreeMap::new(),
        delete_policy: DeletePolicy::Retain,
        id,
    }
}

/// Three variables; `VAR_2` is `v2-{i}-{version}`.
pub fn variables(i: usize, version: u64) -> Variables {
    Variables::from_map(
        (0..3)
            .map(|k| {
                (
                    format!("VAR_{k}"),
                    SecretValue::new(format!("v{k}-{i}-{version}")),
                )
            })
            .collect(),
    )
}

/// Creates the roles of `dests` (all in one account) in the simulator, through its bulk-roles
/// route.
pub async fn create_roles(
    dir: &Path,
    metadata: &str,
    tenant: &TenantKey,
    dests: &[DestinationConfig],
) {
    let roles: Vec<Value> = dests
        .iter()
        .map(|d| {
            json!({
                "role_name": d.role_arn.rsplit('/').next().unwrap(),
                "subject": saml_subject(&tenant.public(), &d.id),
                "secret_name": d.secret_name,
            })
        })
        .collect();
    let account = dests
        .first()
        .and_then(|d| d.role_arn.split(':').nth(4))
        .unwrap_or(ACCOUNT);
    assert!(
        dests
            .iter()
            .all(|d| d.role_arn.split(':').nth(4) == Some(account))
    );
    let spec = dir.join(format!("bulk-roles-{account}.json"));
    std::fs::write(
        &spec,
        json!({"metadata": metadata, "provider_name": "nitrosync", "region": REGION,
               "account": account, "roles": roles})
        .to_string(),
    )
    .unwrap();
    let out = simctl(dir, &["sim", "POST", "bulk-roles", spec.to_str().unwrap()])
        .await
        .unwrap();
    assert_eq!(out["created"], dests.len(), "{out}");
}

pub fn seal_one(
    tenant: &TenantKey,
    bundle_key: &[u8; 32],
    dest: &DestinationConfig,
    i: usize,
    version: u64,
) -> SealedBundle {
    seal(
        tenant,
        bundle_key,
        dest.clone(),
        nitrosync_shared::bundle::Terms::write(
            version,
            nitrosync_shared::unix_ms(std::time::SystemTime::now()),
        ),
        &variables(i, version),
        &mut rng(),
    )
    .unwrap()
}

/// Submits through the admin API; Err when the daemon did not acknowledge it.
pub async fn submit(api: &AdminClient, b: &SealedBundle) -> Result<SubmitReply, String> {
    let bytes = nitrosync_shared::frame::encode_payload(b).unwrap();
    api.call_with(
        http::Method::POST,
        nitrosync_api::paths::BUNDLES,
        Some(bytes),
        "application/cbor",
    )
    .await
    .map_err(|e| e.to_string())
}

/// Successful Secrets Manager writes per secret, from the simulator's write log:
/// (action, client request token) in order.
pub async fn successful_writes(dir: &Path) -> BTreeMap<String, Vec<(String, String)>> {
    let requests = simctl(dir, &["sim", "GET", "requests"]).await.unwrap();
    requests["writes"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, log)| {
            let ok = log
                .as_array()
                .unwrap()
                .iter()
                .filter(|w| w["status"] == "200")
                .map(|w| {
                    (
                        w["action"].as_str().unwrap_or_default().to_owned(),
                        w["client_request_token"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    )
                })
                .collect();
            (name.clone(), ok)
        })
        .collect()
}
