//! `nitrosync iam apply`: creates or updates the customer-side IAM of a destination through the
//! IAM API, from the same documents as `iam template --format json`.
//!
//! Credentials come from the standard AWS chain (environment, profiles, `credential_process`,
//! SSO), so aws-vault and SSO work as they do with the AWS CLI. HTTPS goes through the SDK's own
//! client (aws-smithy-http-client) on rustls with ring, trusting the web PKI roots (plus an extra
//! CA for a test endpoint): [`https_client`]. Every step is idempotent: an existing
//! provider gets the new metadata, an existing role the new trust policy, and the inline policy
//! is replaced.

use crate::{IamDocuments, IamError};
use aws_sdk_iam::config::SharedHttpClient;
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore};
use base64::Engine;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::{self, PemObject};
use serde::Serialize;
use std::fmt;
use std::path::Path;

/// An HTTPS client for the AWS SDK (aws-smithy-http-client): rustls with the ring provider,
/// trusting the web PKI roots and, if given, the CA certificates in `extra_ca` (PEM).
///
/// # Errors
///
/// [`IamError::CaBundle`] when `extra_ca` cannot be read or holds no PEM certificate,
/// [`IamError::CaCertificate`] when one of its certificates cannot be a trust anchor.
pub fn https_client(extra_ca: Option<&Path>) -> Result<SharedHttpClient, IamError> {
    // The client's trust store takes PEM, and panics later on a certificate it cannot use: hand
    // it only certificates that a rustls root store accepted.
    let mut check = RootCertStore::empty();
    let mut trust = TrustStore::empty().with_native_roots(false);
    for cert in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        if check.add(cert.clone()).is_ok() {
            trust.add_pem_certificate(pem_certificate(cert));
        }
    }
    if let Some(path) = extra_ca {
        for cert in read_ca(path, &mut check)? {
            trust.add_pem_certificate(pem_certificate(&cert));
        }
    }
    let tls = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .map_err(IamError::Tls)?;
    Ok(aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .tls_context(tls)
        .build_https())
}

/// The certificates in the PEM file at `path`, each accepted by `roots`.
fn read_ca(
    path: &Path,
    roots: &mut RootCertStore,
) -> Result<Vec<CertificateDer<'static>>, IamError> {
    let bad = |source| IamError::CaBundle {
        path: path.to_owned(),
        source,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(bad)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    if certs.is_empty() {
        return Err(bad(pem::Error::NoItemsFound));
    }
    for (i, cert) in certs.iter().enumerate() {
        roots
            .add(cert.clone())
            .map_err(|source| IamError::CaCertificate {
                path: path.to_owned(),
                number: i.saturating_add(1),
                source,
            })?;
    }
    Ok(certs)
}

/// One certificate as a PEM `CERTIFICATE` section.
fn pem_certificate(der: &CertificateDer<'_>) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut out = Vec::with_capacity(b64.len().saturating_add(b64.len() / 64).saturating_add(64));
    out.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.extend_from_slice(b"-----END CERTIFICATE-----\n");
    out
}

/// An AWS API call that [`apply`] (or [`plan`], [`caller_identity`]) makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IamCall {
    /// `iam:GetSAMLProvider`.
    GetSamlProvider,
    /// `iam:CreateSAMLProvider`.
    CreateSamlProvider,
    /// `iam:UpdateSAMLProvider`.
    UpdateSamlProvider,
    /// `iam:CreateRole`.
    CreateRole,
    /// `iam:UpdateAssumeRolePolicy`.
    UpdateAssumeRolePolicy,
    /// `iam:PutRolePolicy`.
    PutRolePolicy,
    /// `iam:GetRole`.
    GetRole,
    /// `sts:GetCallerIdentity`.
    GetCallerIdentity,
}

impl IamCall {
    /// The IAM action, as policies name it: `iam:CreateRole`.
    #[must_use]
    pub fn action(self) -> &'static str {
        match self {
            Self::GetSamlProvider => "iam:GetSAMLProvider",
            Self::CreateSamlProvider => "iam:CreateSAMLProvider",
            Self::UpdateSamlProvider => "iam:UpdateSAMLProvider",
            Self::CreateRole => "iam:CreateRole",
            Self::UpdateAssumeRolePolicy => "iam:UpdateAssumeRolePolicy",
            Self::PutRolePolicy => "iam:PutRolePolicy",
            Self::GetRole => "iam:GetRole",
            Self::GetCallerIdentity => "sts:GetCallerIdentity",
        }
    }
}

impl fmt::Display for IamCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.action())
    }
}

/// `call` failed with `e`: IAM's code and message, if it answered, and the SDK error.
fn api_error<E>(call: IamCall, e: SdkError<E>) -> IamError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    IamError::Api {
        call,
        code: e.code().map(str::to_owned),
        message: e.message().map(str::to_owned),
        source: Box::new(e),
    }
}

/// What `apply` did.
#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    /// The SAML provider's ARN.
    pub saml_provider_arn: String,
    /// `created` or `updated`.
    pub saml_provider: &'static str,
    /// The role's ARN.
    pub role_arn: String,
    /// `created` or `updated`.
    pub role: &'static str,
    /// The inline policy's name (always written).
    pub policy: String,
}

/// Where and as whom `apply` talks to IAM.
#[derive(Debug, Clone, Copy)]
pub struct Connection<'a> {
    /// The destination's region (IAM is global; the region picks the partition's endpoint).
    pub region: &'a str,
    /// A named profile of the AWS config files, instead of the default chain's choice.
    pub profile: Option<&'a str>,
    /// Another endpoint (a test one), instead of IAM's.
    pub endpoint_url: Option<&'a str>,
    /// One more CA (PEM) to trust, for a test endpoint.
    pub ca_bundle: Option<&'a Path>,
}

/// An IAM client with the standard AWS credential chain (environment, profiles,
/// `credential_process`, SSO) and [`https_client`].
///
/// # Errors
///
/// [`IamError`] when the CA bundle cannot be used.
pub async fn connect(c: &Connection<'_>) -> Result<aws_sdk_iam::Client, IamError> {
    Ok(connect_all(c).await?.iam)
}

/// The clients `iam apply` uses, from one configuration: the same credentials, profile,
/// endpoint and CA for both.
#[derive(Debug, Clone)]
pub struct Clients {
    /// IAM.
    pub iam: aws_sdk_iam::Client,
    /// STS, for `GetCallerIdentity`.
    pub sts: aws_sdk_sts::Client,
}

/// Like [`connect`], with an STS client of the same configuration beside the IAM client.
///
/// # Errors
///
/// [`IamError`] when the profile is unknown or the CA bundle cannot be used.
pub async fn connect_all(c: &Connection<'_>) -> Result<Clients, IamError> {
    let config = load_config(c).await?;
    Ok(Clients {
        iam: aws_sdk_iam::Client::new(&config),
        sts: aws_sdk_sts::Client::new(&config),
    })
}

async fn load_config(c: &Connection<'_>) -> Result<aws_config::SdkConfig, IamError> {
    if let Some(p) = c.profile {
        check_profile(p, &|k| std::env::var_os(k))?;
    }
    let http = https_client(c.ca_bundle)?;
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .region(aws_config::Region::new(c.region.to_owned()));
    if let Some(p) = c.profile {
        loader = loader.profile_name(p);
    }
    if let Some(url) = c.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    Ok(loader.load().await)
}

/// The region the AWS CLI would use when no `--region` is given, and where it came from:
/// `AWS_REGION`, then `AWS_DEFAULT_REGION`, then the `region` of the profile (`AWS_PROFILE`, else
/// `default`) in the AWS config file (`AWS_CONFIG_FILE`, else `~/.aws/config`).
pub async fn default_region() -> Option<(String, &'static str)> {
    use aws_config::meta::region::ProvideRegion as _;
    for var in ["AWS_REGION", "AWS_DEFAULT_REGION"] {
        if let Some(r) = std::env::var(var).ok().filter(|r| !r.trim().is_empty()) {
            return Some((r.trim().to_owned(), var));
        }
    }
    aws_config::profile::region::ProfileFileRegionProvider::new()
        .region()
        .await
        .map(|r| (r.to_string(), "the AWS profile's region"))
}

/// Who the credentials are: `sts:GetCallerIdentity`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallerIdentity {
    /// The 12-digit account.
    pub account: String,
    /// The caller's ARN (user, or assumed role and session).
    pub arn: String,
}

/// `sts:GetCallerIdentity`: the account and ARN of the credentials `sts` signs with. It needs no
/// permission, so it fails only for credentials (none, expired, invalid) or the connection.
///
/// # Errors
///
/// [`IamError::Api`] naming `sts:GetCallerIdentity`.
pub async fn caller_identity(sts: &aws_sdk_sts::Client) -> Result<CallerIdentity, IamError> {
    let out = sts
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| api_error(IamCall::GetCallerIdentity, e))?;
    Ok(CallerIdentity {
        account: out.account().unwrap_or_default().to_owned(),
        arn: out.arn().unwrap_or_default().to_owned(),
    })
}

/// The role's ARN in `partition`, from the documents.
#[must_use]
pub fn role_arn(docs: &IamDocuments, partition: &str) -> String {
    format!(
        "arn:{partition}:iam::{}:role{}{}",
        docs.account, docs.role.path, docs.role.name
    )
}

/// The SAML provider's ARN in `partition`, from the documents.
#[must_use]
pub fn saml_provider_arn(docs: &IamDocuments, partition: &str) -> String {
    format!(
        "arn:{partition}:iam::{}:saml-provider/{}",
        docs.account, docs.saml_provider.name
    )
}

/// Refuses credentials of another account than the one the documents' role lives in.
///
/// # Errors
///
/// [`IamError::WrongAccount`] naming both accounts.
pub fn check_account(
    caller: &CallerIdentity,
    docs: &IamDocuments,
    partition: &str,
) -> Result<(), IamError> {
    if caller.account == docs.account {
        return Ok(());
    }
    Err(IamError::WrongAccount {
        caller_account: caller.account.clone(),
        caller_arn: caller.arn.clone(),
        account: docs.account.clone(),
        role_arn: role_arn(docs, partition),
    })
}

/// What [`apply`] would do, found with reads only (`GetSAMLProvider`, `GetRole`).
#[derive(Debug, Clone, Serialize)]
pub struct ApplyPlan {
    /// The SAML provider's ARN.
    pub saml_provider_arn: String,
    /// `create`, or `update` (its metadata).
    pub saml_provider: &'static str,
    /// The role's ARN.
    pub role_arn: String,
    /// `create`, or `update` (its trust policy).
    pub role: &'static str,
    /// The inline policy's name (always written).
    pub policy: String,
}

/// Whether the provider at `arn` exists.
async fn provider_exists(iam: &aws_sdk_iam::Client, arn: &str) -> Result<bool, IamError> {
    match iam.get_saml_provider().saml_provider_arn(arn).send().await {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_no_such_entity_exception()) =>
        {
            Ok(false)
        }
        Err(e) => Err(api_error(IamCall::GetSamlProvider, e)),
    }
}

/// What [`apply`] would create or update, changing nothing.
///
/// # Errors
///
/// [`IamError::Api`] naming the read that failed.
pub async fn plan(
    iam: &aws_sdk_iam::Client,
    docs: &IamDocuments,
    partition: &str,
) -> Result<ApplyPlan, IamError> {
    let provider_arn = saml_provider_arn(docs, partition);
    let provider = if provider_exists(iam, &provider_arn).await? {
        "update"
    } else {
        "create"
    };
    let role = match iam.get_role().role_name(&docs.role.name).send().await {
        Ok(_) => "update",
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_no_such_entity_exception()) =>
        {
            "create"
        }
        Err(e) => return Err(api_error(IamCall::GetRole, e)),
    };
    Ok(ApplyPlan {
        saml_provider_arn: provider_arn,
        saml_provider: provider,
        role_arn: role_arn(docs, partition),
        role,
        policy: docs.policy.name.clone(),
    })
}

/// The AWS config files the SDK reads: `AWS_CONFIG_FILE` (else `~/.aws/config`), whose sections
/// are `[profile NAME]` (or `[default]`), and `AWS_SHARED_CREDENTIALS_FILE` (else
/// `~/.aws/credentials`), whose sections are `[NAME]`.
fn profile_files(
    env: &dyn Fn(&str) -> Option<std::ffi::OsString>,
) -> [(std::path::PathBuf, bool); 2] {
    let home = env("HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_default();
    let file = |var: &str, default: &str| {
        env(var)
            .filter(|v| !v.is_empty())
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| home.join(".aws").join(default))
    };
    [
        (file("AWS_CONFIG_FILE", "config"), true),
        (file("AWS_SHARED_CREDENTIALS_FILE", "credentials"), false),
    ]
}

/// Whether `text` (an AWS config file) has a section for profile `name`.
fn defines_profile(text: &str, name: &str, config: bool) -> bool {
    text.lines().any(|line| {
        let Some(section) = line
            .trim()
            .strip_prefix('[')
            .and_then(|l| l.strip_suffix(']'))
        else {
            return false;
        };
        let section = section.trim();
        let section = if config {
            match section.strip_prefix("profile") {
                Some(rest) if rest.starts_with(char::is_whitespace) => rest.trim(),
                _ if section == "default" => section,
                _ => return false,
            }
        } else {
            section
        };
        section == name
    })
}

/// Refuses a `--profile` that no config file defines, naming it and the files, as the AWS CLI
/// does; the SDK would only say that no credential provider was enabled.
fn check_profile(
    name: &str,
    env: &dyn Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<(), IamError> {
    let files = profile_files(env);
    let found = files.iter().any(|(path, config)| {
        std::fs::read_to_string(path).is_ok_and(|text| defines_profile(&text, name, *config))
    });
    if found {
        return Ok(());
    }
    Err(IamError::UnknownProfile {
        name: name.to_owned(),
        searched: files
            .iter()
            .map(|(p, _)| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// Creates or updates the provider, the role and its inline policy.
///
/// # Errors
///
/// [`IamError::Api`] naming the first call that failed; the calls before it took effect.
pub async fn apply(
    iam: &aws_sdk_iam::Client,
    docs: &IamDocuments,
    partition: &str,
) -> Result<ApplyReport, IamError> {
    let provider_arn = saml_provider_arn(docs, partition);
    // Look first, then create or update: idempotent whatever CreateSAMLProvider does with a
    // name that exists.
    let provider = if provider_exists(iam, &provider_arn).await? {
        iam.update_saml_provider()
            .saml_provider_arn(&provider_arn)
            .saml_metadata_document(&docs.saml_provider.metadata)
            .send()
            .await
            .map_err(|e| api_error(IamCall::UpdateSamlProvider, e))?;
        "updated"
    } else {
        iam.create_saml_provider()
            .name(&docs.saml_provider.name)
            .saml_metadata_document(&docs.saml_provider.metadata)
            .send()
            .await
            .map_err(|e| api_error(IamCall::CreateSamlProvider, e))?;
        "created"
    };
    let trust = docs.role.trust_policy.to_string();
    let max = i32::try_from(docs.role.max_session_duration).unwrap_or(3600);
    let role = match iam
        .create_role()
        .role_name(&docs.role.name)
        .path(&docs.role.path)
        .description(&docs.role.description)
        .assume_role_policy_document(&trust)
        .max_session_duration(max)
        .send()
        .await
    {
        Ok(_) => "created",
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_entity_already_exists_exception()) =>
        {
            iam.update_assume_role_policy()
                .role_name(&docs.role.name)
                .policy_document(&trust)
                .send()
                .await
                .map_err(|e| api_error(IamCall::UpdateAssumeRolePolicy, e))?;
            "updated"
        }
        Err(e) => return Err(api_error(IamCall::CreateRole, e)),
    };
    iam.put_role_policy()
        .role_name(&docs.role.name)
        .policy_name(&docs.policy.name)
        .policy_document(docs.policy.document.to_string())
        .send()
        .await
        .map_err(|e| api_error(IamCall::PutRolePolicy, e))?;
    let role_arn = iam
        .get_role()
        .role_name(&docs.role.name)
        .send()
        .await
        .map_err(|e| api_error(IamCall::GetRole, e))?
        .role()
        .map(|r| r.arn().to_owned())
        .unwrap_or_default();
    Ok(ApplyReport {
        saml_provider_arn: provider_arn,
        saml_provider: provider,
        role_arn,
        role,
        policy: docs.policy.name.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn web_roots_survive_the_pem_round_trip() {
        let mut roots = RootCertStore::empty();
        for cert in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
            let pem = pem_certificate(cert);
            let back: Vec<_> = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(back, std::slice::from_ref(cert));
            roots.add(cert.clone()).unwrap();
        }
        assert!(roots.len() > 100, "{}", roots.len());
        https_client(None).unwrap();
    }

    #[test]
    fn an_extra_ca_is_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("ca.pem");
        let two = [
            pem_certificate(&webpki_root_certs::TLS_SERVER_ROOT_CERTS[0]),
            pem_certificate(&webpki_root_certs::TLS_SERVER_ROOT_CERTS[1]),
        ]
        .concat();
        std::fs::write(&good, two).unwrap();
        let certs = read_ca(&good, &mut RootCertStore::empty()).unwrap();
        assert_eq!(certs.len(), 2);
        https_client(Some(&good)).unwrap();

        let missing = dir.path().join("missing.pem");
        let e = https_client(Some(&missing)).unwrap_err();
        assert!(
            matches!(&e, IamError::CaBundle { path, source: pem::Error::Io(_) } if *path == missing),
            "{e:?}"
        );
        assert_eq!(e.field(), None);

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no PEM here\n").unwrap();
        let e = https_client(Some(&empty)).unwrap_err();
        assert!(
            matches!(
                &e,
                IamError::CaBundle {
                    source: pem::Error::NoItemsFound,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("empty.pem"), "{e}");

        // Well-formed PEM around bytes that are not a certificate: refused here, not by a panic
        // in the HTTP client later.
        let junk = dir.path().join("junk.pem");
        let second = pem_certificate(&CertificateDer::from(b"not a certificate".to_vec()));
        let first = pem_certificate(&webpki_root_certs::TLS_SERVER_ROOT_CERTS[0]);
        std::fs::write(&junk, [first, second].concat()).unwrap();
        let e = https_client(Some(&junk)).unwrap_err();
        assert!(
            matches!(&e, IamError::CaCertificate { number: 2, .. }),
            "{e:?}"
        );
        assert!(e.source().is_some());
    }

    #[test]
    fn api_errors_name_the_call_and_keep_the_sdk_error() {
        let e = api_error(
            IamCall::GetSamlProvider,
            SdkError::<aws_sdk_iam::operation::get_saml_provider::GetSAMLProviderError>::construction_failure(
                "no credentials",
            ),
        );
        assert_eq!(e.to_string(), "iam:GetSAMLProvider failed");
        assert_eq!(e.field(), None);
        let source = e.source().unwrap();
        assert!(
            source
                .is::<SdkError<aws_sdk_iam::operation::get_saml_provider::GetSAMLProviderError>>()
        );

        let e = IamError::Api {
            call: IamCall::PutRolePolicy,
            code: Some("MalformedPolicyDocument".into()),
            message: Some("bad".into()),
            source: "x".into(),
        };
        assert_eq!(
            e.to_string(),
            "iam:PutRolePolicy: MalformedPolicyDocument: bad"
        );
    }
}

#[cfg(test)]
mod account_tests {
    use super::*;

    #[test]
    fn another_account_is_refused_naming_both() {
        let docs: IamDocuments = serde_json::from_value(serde_json::json!({
            "account": "123456789012",
            "saml_provider": {"name": "nitrosync-d", "metadata": "<x/>"},
            "role": {"name": "nitrosync-d", "path": "/", "description": "d",
                     "trust_policy": {}, "max_session_duration": 3600},
            "policy": {"name": "nitrosync-d", "document": {}}
        }))
        .unwrap();
        assert_eq!(
            role_arn(&docs, "aws"),
            "arn:aws:iam::123456789012:role/nitrosync-d"
        );
        assert_eq!(
            saml_provider_arn(&docs, "aws"),
            "arn:aws:iam::123456789012:saml-provider/nitrosync-d"
        );
        let same = CallerIdentity {
            account: "123456789012".into(),
            arn: "arn:aws:iam::123456789012:user/a".into(),
        };
        check_account(&same, &docs, "aws").unwrap();
        let other = CallerIdentity {
            account: "210987654321".into(),
            arn: "arn:aws:iam::210987654321:user/b".into(),
        };
        let e = check_account(&other, &docs, "aws").unwrap_err().to_string();
        assert!(e.contains("account 210987654321"), "{e}");
        assert!(e.contains("is in account 123456789012"), "{e}");
        assert!(e.contains("nothing was written"), "{e}");
    }
}

#[cfg(test)]
mod profile_tests {
    use super::*;

    #[test]
    fn profiles_are_found_in_either_file_and_an_unknown_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        let creds = dir.path().join("creds");
        std::fs::write(
            &config,
            "[default]\nregion = us-east-1\n[profile dev]\nregion = eu-west-1\n[profiledev2]\n",
        )
        .unwrap();
        std::fs::write(&creds, "[ci]\naws_access_key_id = x\n").unwrap();
        let (c, k) = (config.clone(), creds.clone());
        let env = move |var: &str| match var {
            "AWS_CONFIG_FILE" => Some(c.clone().into_os_string()),
            "AWS_SHARED_CREDENTIALS_FILE" => Some(k.clone().into_os_string()),
            _ => None,
        };
        for known in ["default", "dev", "ci"] {
            check_profile(known, &env).unwrap();
        }
        for unknown in ["nosuch", "dev2", "profile dev"] {
            let e = check_profile(unknown, &env).unwrap_err().to_string();
            assert!(e.contains(&format!("({unknown})")), "{e}");
            assert!(e.contains(config.to_str().unwrap()), "{e}");
        }
    }
}
