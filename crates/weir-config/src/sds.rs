//! Certificates and CAs from files, rotated without a restart:
//! `tls_certificate_sds_secret_configs` and `validation_context_sds_secret_config` whose
//! `sds_config` is a `path_config_source` (or the older `path`). The file is a
//! `DiscoveryResponse` whose `resources[]` hold `envoy.extensions.transport_sockets.tls.v3.Secret`s;
//! the one named `name` gives its `tls_certificate` or its `validation_context`.
//!
//! The file is read when the config is (an error then names the config path), and again when
//! [`CertRotation::refresh`] sees it, or a certificate or key file it names, change: a secret
//! that reads and builds replaces the old one for new handshakes (connections keep theirs); one
//! that does not keeps the old one, and the error says why.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;

use rustls::time_provider::{DefaultTimeProvider, TimeProvider};

use crate::model::SharedCerts;
use crate::ocsp::OcspPolicy;
use crate::reader::{Cx, Field, Obj, join};
use crate::source::{self, Format};
use crate::tls::{Validation, tls_certificate, validation_context};
use crate::tls_build::{Certificate, served_cert};

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

/// What a secret gives.
pub(crate) enum Secret {
    Certificate(Certificate),
    Validation(Validation),
}

/// Which part of a secret an entry asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wanted {
    Certificate,
    Validation,
}

/// An entry as read: its source and the secret it gives now.
pub(crate) fn sds_secret_config(
    cx: &mut Cx,
    f: &Field<'_>,
    wanted: Wanted,
) -> Option<(SdsSource, Secret)> {
    let mut o = Obj::new(cx, f, &[])?;
    let name = o.required_string(cx, "name");
    let path = o.required(cx, "sds_config").and_then(|s| sds_path(cx, &s));
    o.finish(cx);
    let source = SdsSource {
        path: PathBuf::from(path?),
        name: name?,
    };
    match read_secret(&source, wanted) {
        Ok(secret) => Some((source, secret)),
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
fn read_secret(source: &SdsSource, wanted: Wanted) -> Result<Secret, String> {
    let shown = source.path.display();
    let text = std::fs::read_to_string(&source.path)
        .map_err(|e| format!("cannot read the SDS file {shown}: {e}"))?;
    let parsed = source::document(&text, Format::Sniff)
        .map_err(|e| format!("SDS file {shown}: {}: {}", e.path, e.message))?;
    let mut cx = Cx::default();
    let secret = secret(&mut cx, &Field::root(&parsed.doc), &source.name, wanted);
    match (secret, cx.errors.first()) {
        (Some(c), None) => Ok(c),
        (_, Some(e)) => Err(format!("SDS file {shown}: {}: {}", e.path, e.message)),
        (None, None) => Err(format!("SDS file {shown}: invalid")),
    }
}

/// The `tls_certificate` or `validation_context` of the secret named `name` among the file's
/// `resources`.
fn secret(cx: &mut Cx, f: &Field<'_>, name: &str, wanted: Wanted) -> Option<Secret> {
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
        found = match (wanted, cert, validation) {
            (Wanted::Certificate, Some(c), _) => tls_certificate(cx, &c).map(Secret::Certificate),
            (Wanted::Validation, _, Some(v)) => validation_context(cx, &v).map(Secret::Validation),
            (Wanted::Certificate, None, _) => {
                cx.error(&r.path, "the secret has no `tls_certificate`");
                None
            }
            (Wanted::Validation, _, None) => {
                cx.error(&r.path, "the secret has no `validation_context`");
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

/// Puts a CA read again to use: rebuilds the verifier it feeds.
pub(crate) type Reverify = Box<dyn Fn(Validation) -> Result<(), String> + Send + Sync>;

/// What a slot keeps fresh.
enum Target {
    /// A listener's certificate, by its index among those it serves.
    Certificate(usize),
    /// The CA peers' certificates are verified against.
    Validation(Reverify),
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Certificate(i) => write!(f, "Certificate({i})"),
            Target::Validation(_) => f.write_str("Validation"),
        }
    }
}

/// One secret a rotation keeps fresh.
#[derive(Debug)]
struct Slot {
    target: Target,
    source: SdsSource,
    /// The files last read for it (the SDS file, then those the secret names).
    files: Vec<PathBuf>,
    stamp: Stamp,
}

impl Slot {
    fn new(target: Target, source: SdsSource, named: Vec<PathBuf>) -> Slot {
        let mut files = vec![source.path.clone()];
        files.extend(named);
        let stamp = Stamp::of(&files);
        Slot {
            target,
            source,
            files,
            stamp,
        }
    }
}

/// The secrets of one TLS context that come from SDS files: certificates (with the keys its
/// server config serves from, shared with its certificate resolver) and the CA.
#[derive(Debug)]
pub struct CertRotation {
    /// The certificates a listener serves, and its `ocsp_staple_policy`.
    keys: Option<(SharedCerts, OcspPolicy)>,
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
    /// A rotation of `certificates` (index among `keys`, source, files it names) and of the
    /// CA, when `validation` gives its source, the files it names and how to use it.
    pub(crate) fn new(
        keys: Option<(SharedCerts, OcspPolicy)>,
        provider: Arc<CryptoProvider>,
        certificates: Vec<(usize, SdsSource, Vec<PathBuf>)>,
        validation: Option<(SdsSource, Vec<PathBuf>, Reverify)>,
    ) -> CertRotation {
        let mut slots: Vec<Slot> = certificates
            .into_iter()
            .map(|(index, source, named)| Slot::new(Target::Certificate(index), source, named))
            .collect();
        if let Some((source, named, reverify)) = validation {
            slots.push(Slot::new(Target::Validation(reverify), source, named));
        }
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
            match self.apply(slot) {
                Ok(named) => {
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

impl CertRotation {
    /// Reads a slot's secret again and puts it to use; the files it names now.
    fn apply(&self, slot: &Slot) -> Result<Vec<PathBuf>, String> {
        match (
            &slot.target,
            read_secret(&slot.source, wanted(&slot.target))?,
        ) {
            (Target::Certificate(index), Secret::Certificate(c)) => {
                let named = named_files(&c);
                let Some((keys, policy)) = &self.keys else {
                    return Ok(named);
                };
                let now = DefaultTimeProvider.current_time().map(|t| t.as_secs());
                let served = served_cert(c, &self.provider, *policy, now)
                    .map_err(|(path, e)| format!("{path}: {e}"))?;
                let mut keys = keys.write().unwrap_or_else(|e| e.into_inner());
                if let Some(k) = keys.get_mut(*index) {
                    *k = served;
                }
                Ok(named)
            }
            (Target::Validation(reverify), Secret::Validation(v)) => {
                let named = validation_files(&v);
                reverify(v)?;
                Ok(named)
            }
            _ => Err("the secret is not of the kind asked for".to_owned()),
        }
    }
}

fn wanted(target: &Target) -> Wanted {
    match target {
        Target::Certificate(_) => Wanted::Certificate,
        Target::Validation(_) => Wanted::Validation,
    }
}

/// The file a secret's CA was read from, to watch (none when inline).
pub(crate) fn validation_files(v: &Validation) -> Vec<PathBuf> {
    match v.ca_path.as_str() {
        "<inline>" => Vec::new(),
        path => vec![PathBuf::from(path)],
    }
}

/// The files a secret's certificate and key were read from, to watch.
pub(crate) fn named_files(c: &Certificate) -> Vec<PathBuf> {
    c.files.iter().map(|p| Path::new(p).to_path_buf()).collect()
}
