//! The control plane's certificates, made with rcgen (pure Rust, so no openssl CLI to install):
//! one CA that signs every serving and client certificate, and the key pair that signs service
//! account tokens.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

use crate::Error;

/// A certificate and its private key, both PEM.
#[derive(Debug)]
pub struct CertKey {
    pub cert: String,
    pub key: String,
}

/// The cluster's certificate authority.
pub struct Authority {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Authority {
    pub fn new() -> Result<Self, Error> {
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name("flashcards-e2e-ca");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        Ok(Self { issuer })
    }

    /// The CA's certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// The CA's certificate, DER.
    pub fn cert_der(&self) -> Vec<u8> {
        self.issuer.der().to_vec()
    }

    /// A serving certificate for `names` (DNS names or IP addresses).
    pub fn serving(&self, common: &str, names: &[&str]) -> Result<CertKey, Error> {
        let owned: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let mut params = CertificateParams::new(owned)?;
        params.distinguished_name = common_name(common);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params)
    }

    /// A client certificate: Kubernetes takes the common name as the user and the organization as
    /// the group.
    pub fn client(&self, user: &str, group: Option<&str>) -> Result<CertKey, Error> {
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name(user);
        if let Some(group) = group {
            params
                .distinguished_name
                .push(DnType::OrganizationName, group);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }

    fn sign(&self, mut params: CertificateParams) -> Result<CertKey, Error> {
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(CertKey {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }
}

/// The service account token signing key, as `(private PEM, public PEM)`: the apiserver signs
/// with the private key and checks with the public one, the controller-manager signs too.
pub fn service_account_keys() -> Result<(String, String), Error> {
    let key = KeyPair::generate()?;
    Ok((key.serialize_pem(), key.public_key_pem()))
}

fn common_name(name: &str) -> DistinguishedName {
    let mut distinguished_name = DistinguishedName::new();
    distinguished_name.push(DnType::CommonName, name);
    distinguished_name
}
