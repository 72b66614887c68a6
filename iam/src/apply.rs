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

/// An IAM API call that [`apply`] makes.
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
    Ok(aws_sdk_iam::Client::new(&loader.load().await))
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
    let provider_arn = format!(
        "arn:{partition}:iam::{}:saml-provider/{}",
        docs.account, docs.saml_provider.name
    );
    // Look first, then create or update: idempotent whatever CreateSAMLProvider does with a
    // name that exists.
    let exists = match iam
        .get_saml_provider()
        .saml_provider_arn(&provider_arn)
        .send()
        .await
    {
        Ok(_) => true,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_no_such_entity_exception()) =>
        {
            false
        }
        Err(e) => return Err(api_error(IamCall::GetSamlProvider, e)),
    };
    let provider = if exists {
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
