//! Session resumption on a TLS listener, as its `DownstreamTlsContext` asks:
//! - `session_ticket_keys`: ticket keys shared by every proxy that should resume the others'
//!   sessions (Envoy's 80-byte key files: a 16-byte name, 32 bytes of HMAC secret, 32 of AES
//!   key). The first key seals new tickets; all of them open tickets. The tickets are weir's own
//!   (AES-256-GCM with the AES key, the name in front to pick the key), so weir and Envoy
//!   sharing a key file do not resume each other's sessions.
//! - `session_timeout`: how long a ticket or a cached session may be resumed; the time a ticket
//!   was sealed travels inside it, authenticated, and is checked when it comes back.
//! - `disable_stateless_session_resumption` / `disable_stateful_session_resumption`.
//!
//! Without any of them a listener resumes as BoringSSL does by default: stateless tickets under
//! keys of its own that rotate (rustls' `Ticketer`), and a cache of 256 sessions.

use std::sync::Arc;
use std::time::Duration;

use crate::crypto::lib::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use crate::crypto::lib::rand::{SecureRandom, SystemRandom};
use crate::crypto::rustls_provider;
use rustls::ServerConfig;
use rustls::server::{NoServerSessionStorage, ProducesTickets, StoresServerSessions};
use rustls::time_provider::TimeProvider;

/// The length of one `session_ticket_keys` key, as Envoy requires it.
pub(crate) const KEY_LEN: usize = 80;

/// What a `DownstreamTlsContext` says about resumption.
#[derive(Debug, Default)]
pub(crate) struct Resumption {
    /// `session_ticket_keys.keys`, each [`KEY_LEN`] bytes; empty: keys of the listener's own.
    pub(crate) ticket_keys: Vec<Vec<u8>>,
    /// `session_timeout`.
    pub(crate) timeout: Option<Duration>,
    pub(crate) disable_stateless: bool,
    pub(crate) disable_stateful: bool,
}

impl Resumption {
    /// Sets the config's ticketer and session store.
    pub(crate) fn apply(self, config: &mut ServerConfig) -> Result<(), String> {
        let clock = config.time_provider.clone();
        let lifetime = self
            .timeout
            .map(|t| u32::try_from(t.as_secs()).unwrap_or(u32::MAX));
        if !self.disable_stateless {
            let sealer: Arc<dyn ProducesTickets> = if self.ticket_keys.is_empty() {
                rustls_provider::Ticketer::new().map_err(|e| e.to_string())?
            } else {
                Arc::new(SharedKeys::new(&self.ticket_keys)?)
            };
            config.ticketer = match lifetime {
                Some(lifetime) => Arc::new(Expiring {
                    inner: sealer,
                    lifetime,
                    clock: clock.clone(),
                }),
                None => sealer,
            };
        }
        if self.disable_stateful {
            config.session_storage = Arc::new(NoServerSessionStorage {});
        } else if let Some(lifetime) = lifetime {
            config.session_storage = Arc::new(ExpiringStore {
                inner: rustls::server::ServerSessionMemoryCache::new(256),
                lifetime,
                clock,
            });
        }
        if self.disable_stateless && self.disable_stateful {
            config.send_tls13_tickets = 0;
        }
        Ok(())
    }
}

/// Tickets sealed with `session_ticket_keys`: `name (16) ‖ nonce (12) ‖ AES-256-GCM(plain)`,
/// the name authenticated as associated data.
struct SharedKeys {
    keys: Vec<([u8; 16], LessSafeKey)>,
}

impl std::fmt::Debug for SharedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedKeys")
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl SharedKeys {
    fn new(keys: &[Vec<u8>]) -> Result<SharedKeys, String> {
        let keys = keys
            .iter()
            .map(|k| {
                let (name, rest) = k.split_at(16);
                let aes = &rest[32..];
                let key = UnboundKey::new(&AES_256_GCM, aes)
                    .map_err(|_| "session_ticket_keys: unusable AES key".to_owned())?;
                let name: [u8; 16] = name.try_into().map_err(|_| "key name".to_owned())?;
                Ok((name, LessSafeKey::new(key)))
            })
            .collect::<Result<_, String>>()?;
        Ok(SharedKeys { keys })
    }
}

impl ProducesTickets for SharedKeys {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        // rustls' own tickets say 6 hours; the same here unless `session_timeout` says.
        6 * 60 * 60
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let (name, key) = self.keys.first()?;
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).ok()?;
        let mut sealed = plain.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(name),
            &mut sealed,
        )
        .ok()?;
        let mut out = Vec::with_capacity(16 + NONCE_LEN + sealed.len());
        out.extend_from_slice(name);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Some(out)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        let (name, rest) = cipher.split_at_checked(16)?;
        let (nonce, sealed) = rest.split_at_checked(NONCE_LEN)?;
        let (_, key) = self.keys.iter().find(|(n, _)| n == name)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = sealed.to_vec();
        let plain = key.open_in_place(nonce, Aad::from(name), &mut buf).ok()?;
        Some(plain.to_vec())
    }
}

/// `session_timeout` on tickets: the sealing time goes in front of the plaintext (so the inner
/// ticketer authenticates it) and a ticket older than `lifetime` is refused.
#[derive(Debug)]
struct Expiring {
    inner: Arc<dyn ProducesTickets>,
    lifetime: u32,
    clock: Arc<dyn TimeProvider>,
}

impl ProducesTickets for Expiring {
    fn enabled(&self) -> bool {
        self.inner.enabled()
    }

    fn lifetime(&self) -> u32 {
        self.lifetime
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let now = self.clock.current_time()?.as_secs();
        let mut stamped = Vec::with_capacity(8 + plain.len());
        stamped.extend_from_slice(&now.to_be_bytes());
        stamped.extend_from_slice(plain);
        self.inner.encrypt(&stamped)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        let stamped = self.inner.decrypt(cipher)?;
        let (sealed_at, plain) = stamped.split_at_checked(8)?;
        let sealed_at = u64::from_be_bytes(sealed_at.try_into().ok()?);
        fresh(sealed_at, self.lifetime, &*self.clock).then(|| plain.to_vec())
    }
}

/// `session_timeout` on the session cache (TLS 1.2 session ids, TLS 1.3 stateful tickets).
#[derive(Debug)]
struct ExpiringStore {
    inner: Arc<rustls::server::ServerSessionMemoryCache>,
    lifetime: u32,
    clock: Arc<dyn TimeProvider>,
}

impl ExpiringStore {
    fn check(&self, stamped: Vec<u8>) -> Option<Vec<u8>> {
        let (stored_at, value) = stamped.split_at_checked(8)?;
        let stored_at = u64::from_be_bytes(stored_at.try_into().ok()?);
        fresh(stored_at, self.lifetime, &*self.clock).then(|| value.to_vec())
    }
}

impl StoresServerSessions for ExpiringStore {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        let Some(now) = self.clock.current_time() else {
            return false;
        };
        let mut stamped = Vec::with_capacity(8 + value.len());
        stamped.extend_from_slice(&now.as_secs().to_be_bytes());
        stamped.extend_from_slice(&value);
        self.inner.put(key, stamped)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.check(self.inner.get(key)?)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.check(self.inner.take(key)?)
    }

    fn can_cache(&self) -> bool {
        self.inner.can_cache()
    }
}

/// Whether something made at `made` (Unix seconds) is still within `lifetime` now.
fn fresh(made: u64, lifetime: u32, clock: &dyn TimeProvider) -> bool {
    clock
        .current_time()
        .is_some_and(|now| now.as_secs().saturating_sub(made) <= u64::from(lifetime))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use rustls::pki_types::UnixTime;

    use super::*;

    /// A clock the test moves.
    #[derive(Debug, Default)]
    struct Clock(AtomicU64);

    impl TimeProvider for Clock {
        fn current_time(&self) -> Option<UnixTime> {
            Some(UnixTime::since_unix_epoch(Duration::from_secs(
                self.0.load(Ordering::Relaxed),
            )))
        }
    }

    fn key(byte: u8) -> Vec<u8> {
        (0..KEY_LEN as u8).map(|i| i ^ byte).collect()
    }

    #[test]
    fn a_ticket_opens_under_any_listed_key_and_only_those() {
        let a = SharedKeys::new(&[key(1)]).expect("keys");
        let ab = SharedKeys::new(&[key(2), key(1)]).expect("keys");
        let other = SharedKeys::new(&[key(3)]).expect("keys");
        let ticket = a.encrypt(b"session").expect("sealed");
        assert_eq!(ab.decrypt(&ticket).as_deref(), Some(&b"session"[..]));
        assert_eq!(other.decrypt(&ticket), None);
        let mut tampered = ticket.clone();
        *tampered.last_mut().expect("bytes") ^= 1;
        assert_eq!(a.decrypt(&tampered), None);
        assert_eq!(a.decrypt(&ticket[..20]), None);
        // New tickets are sealed with the first key.
        let fresh = ab.encrypt(b"x").expect("sealed");
        assert_eq!(a.decrypt(&fresh), None);
    }

    #[test]
    fn session_timeout_refuses_old_tickets_and_sessions() {
        let clock = Arc::new(Clock::default());
        clock.0.store(1_000, Ordering::Relaxed);
        let tickets = Expiring {
            inner: Arc::new(SharedKeys::new(&[key(1)]).expect("keys")),
            lifetime: 60,
            clock: clock.clone(),
        };
        let ticket = tickets.encrypt(b"session").expect("sealed");
        let store = ExpiringStore {
            inner: rustls::server::ServerSessionMemoryCache::new(4),
            lifetime: 60,
            clock: clock.clone(),
        };
        assert!(store.put(b"id".to_vec(), b"value".to_vec()));
        clock.0.store(1_060, Ordering::Relaxed);
        assert_eq!(tickets.decrypt(&ticket).as_deref(), Some(&b"session"[..]));
        assert_eq!(store.get(b"id").as_deref(), Some(&b"value"[..]));
        clock.0.store(1_061, Ordering::Relaxed);
        assert_eq!(tickets.decrypt(&ticket), None);
        assert_eq!(store.get(b"id"), None);
        assert_eq!(tickets.lifetime(), 60);
    }
}
