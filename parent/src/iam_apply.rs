//! `nitrosync iam apply`: creates or updates the customer-side IAM of a destination through the
//! IAM API, from the same documents as `iam template --format json`.
//!
//! Credentials come from the standard AWS chain (environment, profiles, `credential_process`,
//! SSO), so aws-vault and SSO work as they do with the AWS CLI. HTTPS goes through rustls with the
//! web PKI roots (plus an extra CA for a test endpoint). Every step is idempotent: an existing
//! provider gets the new metadata, an existing role the new trust policy, and the inline policy
//! is replaced.

use crate::iam::IamDocuments;
use aws_sdk_iam::error::ProvideErrorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;

/// An HTTPS client for the AWS SDK over plain TCP, with rustls (ring).
#[derive(Debug, Clone)]
pub struct DirectHttpClient {
    client: Client<hyper_rustls::HttpsConnector<TcpConnector>, SdkBody>,
}

impl DirectHttpClient {
    /// A client trusting the web PKI roots and, if given, one more CA (PEM).
    pub fn new(extra_ca: Option<&Path>) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = extra_ca {
            use rustls::pki_types::pem::PemObject;
            for cert in rustls::pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("{}: {e}", path.display()))?
            {
                let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut tcp = TcpConnector::new();
        tcp.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .wrap_connector(tcp);
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(https),
        })
    }
}

impl HttpConnector for DirectHttpClient {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.client.clone();
        HttpConnectorFuture::new(async move {
            let req = request
                .try_into_http1x()
                .map_err(|e| ConnectorError::user(e.into()))?;
            let resp = client
                .request(req)
                .await
                .map_err(|e| ConnectorError::io(e.into()))?;
            let (parts, body) = resp.into_parts();
            aws_smithy_runtime_api::http::Response::try_from(http::Response::from_parts(
                parts,
                SdkBody::from_body_1_x(body),
            ))
            .map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

impl HttpClient for DirectHttpClient {
    fn http_connector(
        &self,
        _: &HttpConnectorSettings,
        _: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
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

fn aws_error<E: ProvideErrorMetadata + std::fmt::Debug>(
    what: &str,
    e: &aws_sdk_iam::error::SdkError<E>,
) -> String {
    match e.as_service_error() {
        Some(se) => format!(
            "{what}: {}: {}",
            se.code().unwrap_or("error"),
            se.message().unwrap_or("")
        ),
        None => format!("{what}: {e}"),
    }
}

/// Creates or updates the provider, the role and its inline policy.
pub async fn apply(
    iam: &aws_sdk_iam::Client,
    docs: &IamDocuments,
    partition: &str,
) -> Result<ApplyReport, String> {
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
        Err(e) => return Err(aws_error("iam:GetSAMLProvider", &e)),
    };
    let provider = if exists {
        iam.update_saml_provider()
            .saml_provider_arn(&provider_arn)
            .saml_metadata_document(&docs.saml_provider.metadata)
            .send()
            .await
            .map_err(|e| aws_error("iam:UpdateSAMLProvider", &e))?;
        "updated"
    } else {
        iam.create_saml_provider()
            .name(&docs.saml_provider.name)
            .saml_metadata_document(&docs.saml_provider.metadata)
            .send()
            .await
            .map_err(|e| aws_error("iam:CreateSAMLProvider", &e))?;
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
                .map_err(|e| aws_error("iam:UpdateAssumeRolePolicy", &e))?;
            "updated"
        }
        Err(e) => return Err(aws_error("iam:CreateRole", &e)),
    };
    iam.put_role_policy()
        .role_name(&docs.role.name)
        .policy_name(&docs.policy.name)
        .policy_document(docs.policy.document.to_string())
        .send()
        .await
        .map_err(|e| aws_error("iam:PutRolePolicy", &e))?;
    let role_arn = iam
        .get_role()
        .role_name(&docs.role.name)
        .send()
        .await
        .map_err(|e| aws_error("iam:GetRole", &e))?
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
