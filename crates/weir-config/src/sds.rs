//! Certificates from files, rotated without a restart: `tls_certificate_sds_secret_configs`
//! whose `sds_config` is a `path_config_source` (or the older `path`). The file is a
//! `DiscoveryResponse` whose `resources[]` hold `envoy.extensions.transport_sockets.tls.v3.Secret`s;
//! the one named `name` gives its `tls_certificate`.
//!
//! The file is read when the config is (an error then names the config path), and again when
//! [`CertRotation::refresh`] sees it, or a certificate or key file it names, change: a secret
//! that reads and builds replaces the old one for new handshakes (connections keep theirs); one
//! that does not keeps the old one, and the error says why.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;

use crate::model::{ServedCert, SharedCerts};
use crate::reader::{Cx, Field, Obj, join};
use crate::source::{self, Format};
use crate::tls::tls_certificate;
use crate::tls_build::{Certificate, certified_key};

/// The `@type` of a secret in an SDS file.
const SECRET_TYPE: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

/// One `tls_certificate_sds_secret_configs[]` entry: where its secret is.
#[derive(Debug, Clone)]
pub(crate) struct SdsSource {
    /// The SDS file.
    pub(crate) path: PathBuf,
    /// The secret's `name`.
    pub(crate) name: String,
}

/// An entry as read: its source and the certificate it gives now.
pub(crate) fn sds_secret_config(cx: &mut Cx, f: &Field<'_>) -> Option<(SdsSource, Certificate)> {
    let mut o = Obj::new(cx, f, &[])?;
    let name = o.required_string(cx, "name");
    let path = o.required(cx, "sds_config").and_then(|s| sds_path(cx, &s));
    o.finish(cx);
    let source = SdsSource {
        path: PathBuf::from(path?),
        name: name?,
    };
    match read_secret(&source) {
        Ok(certificate) => Some((source, certificate)),
        Err(e) => {
            cx.error(&f.path, e);
            None
        }
    }
}

/// `sds_config`: `path_config_source.path`, or the deprecated `path`. A gRPC or ADS source is
/// xDS, which weir does not have yet.
fn sds_path(cx: &mut Cx, f: &Field<'_>) -> Option<String> {
    let mut o = Obj::new(
        cx,
        f,
        &["api_config_source", "ads", "self", "initial_fetch_timeout"],
    )?;
    o.get(cx, "resource_api_version");
    let path = o.get(cx, "path");
    let source = o.get(cx, "path_config_source");
    // A gRPC or ADS source was reported already, by name.
    let complete = o.finish(cx);
    match (path, source) {
        (Some(p), None) => p.string(cx),
        (None, Some(s)) => {
            let mut so = Obj::new(cx, &s, &["watched_directory"])?;
            let path = so.required_string(cx, "path");
            so.finish(cx);
            path
        }
        _ if !complete => None,
        _ => {
            cx.error(
                &f.path,
                "give the secret's file as `path_config_source.path` (weir reads secrets from files; SDS over gRPC is xDS, not supported yet)",
            );
            None
        }
    }
}

/// Reads the secret `source` names; an error says what is wrong, with the path inside the file.
fn read_secret(source: &SdsSource) -> Result<Certificate, String> {
    let shown = source.path.display();
    let text = std::fs::read_to_string(&source.path)
        .map_err(|e| format!("cannot read the SDS file {shown}: {e}"))?;
    let parsed = source::document(&text, Format::Sniff)
        .map_err(|e| format!("SDS file {shown}: {}: {}", e.path, e.message))?;
    let mut cx = Cx::default();
    let certificate = secret(&mut cx, &Field::root(&parsed.doc), &source.name);
    match (certificate, cx.errors.first()) {
        (Some(c), None) => Ok(c),
        (_, Some(e)) => Err(format!("SDS file {shown}: {}: {}", e.path, e.message)),
        (None, None) => Err(format!("SDS file {shown}: invalid")),
    }
}

/// The `tls_certificate` of the secret named `name` among the file's `resources`.
fn secret(cx: &mut Cx, f: &Field<'_>, name: &str) -> Option<Certificate> {
    let mut o = Obj::new(cx, f, &[])?;
    o.get(cx, "version_info");
    o.get(cx, "type_url");
    let resources = o.list(cx, "resources");
    o.finish(cx);
    let mut found = None;
    for r in resources {
        let mut ro = Obj::new(cx, &r, &["session_ticket_keys", "generic_secret"])?;
        let type_url = ro.string(cx, "@type");
        let secret_name = ro.string(cx, "name");
        let cert = ro.get(cx, "tls_certificate");
        let validation = ro.get(cx, "validation_context");
        ro.finish(cx);
        if secret_name.as_deref() != Some(name) {
            continue;
        }
        if type_url.as_deref().is_some_and(|t| t != SECRET_TYPE) {
            cx.error(
                &join(&r.path, "@type"),
                format!("a secret's @type is {SECRET_TYPE}"),
            );
            return None;
        }
        if validation.is_some() {
            cx.error(
                &r.path,
                "a validation_context secret is not supported by weir yet (only tls_certificate)",
            );
            return None;
        }
        found = match cert {
            Some(c) => tls_certificate(cx, &c),
            None => {
                cx.error(&r.path, "the secret has no `tls_certificate`");
                None
            }
        };
        break;
    }
    if found.is_none() && cx.errors.is_empty() {
        cx.error(&f.path, format!("no secret named `{name}` in `resources`"));
    }
    found
}

/// What a change check compares: the SDS file's, and the files it names (a certificate
/// replaced in place, the SDS file unchanged, is a rotation too).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Stamp(Vec<Option<(SystemTime, u64)>>);

impl Stamp {
    fn of(paths: &[PathBuf]) -> Stamp {
        Stamp(
            paths
                .iter()
                .map(|p| {
                    let m = std::fs::metadata(p).ok()?;
                    Some((m.modified().ok()?, m.len()))
                })
                .collect(),
        )
    }
}

/// One certificate slot a rotation keeps fresh.
#[derive(Debug)]
struct Slot {
    /// Its index among the listener's certificates.
    index: usize,
    source: SdsSource,
    /// The files last read for it (the SDS file, then those the secret names).
    files: Vec<PathBuf>,
    stamp: Stamp,
}

/// The certificates of one TLS context that come from SDS files, and the keys its server config
/// serves from (shared with its certificate resolver).
#[derive(Debug)]
pub struct CertRotation {
    keys: SharedCerts,
    provider: Arc<CryptoProvider>,
    slots: Mutex<Vec<Slot>>,
}

/// What one refresh did for a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotated {
    /// The secret was read again and now serves new handshakes.
    Updated {
        /// The secret's name.
        name: String,
    },
    /// It changed but could not be used; the old one stays.
    Rejected {
        /// The secret's name.
        name: String,
        /// What is wrong with it.
        why: String,
    },
}

impl CertRotation {
    pub(crate) fn new(
        keys: SharedCerts,
        provider: Arc<CryptoProvider>,
        sources: Vec<(usize, SdsSource, Vec<PathBuf>)>,
    ) -> CertRotation {
        let slots = sources
            .into_iter()
            .map(|(index, source, named)| {
                let mut files = vec![source.path.clone()];
                files.extend(named);
                let stamp = Stamp::of(&files);
                Slot {
                    index,
                    source,
                    files,
                    stamp,
                }
            })
            .collect();
        CertRotation {
            keys,
            provider,
            slots: Mutex::new(slots),
        }
    }

    /// Reads again each secret whose files changed since the last look.
    pub fn refresh(&self) -> Vec<Rotated> {
        let mut out = Vec::new();
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        for slot in slots.iter_mut() {
            let stamp = Stamp::of(&slot.files);
            if stamp == slot.stamp {
                continue;
            }
            slot.stamp = stamp;
            let name = slot.source.name.clone();
            let built = read_secret(&slot.source).and_then(|c| {
                let named = named_files(&c);
                let chain_path = c.chain_path.clone();
                certified_key(c, &self.provider).map(|k| (k, chain_path, named))
            });
            match built {
                Ok((key, chain_path, named)) => {
                    let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
                    if let Some(k) = keys.get_mut(slot.index) {
                        *k = ServedCert {
                            key: Arc::new(key),
                            chain_path,
                        };
                    }
                    slot.files.truncate(1);
                    slot.files.extend(named);
                    slot.stamp = Stamp::of(&slot.files);
                    out.push(Rotated::Updated { name });
                }
                Err(why) => out.push(Rotated::Rejected { name, why }),
            }
        }
        out
    }
}

/// The files a secret's certificate and key were read from, to watch.
pub(crate) fn named_files(c: &Certificate) -> Vec<PathBuf> {
    c.files.iter().map(|p| Path::new(p).to_path_buf()).collect()
}
