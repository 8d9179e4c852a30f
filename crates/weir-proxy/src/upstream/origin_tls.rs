//! The TLS side of the codec client: which SNI a new connection to an origin sends (the
//! request's host under the cluster's `auto_sni`, the endpoint's `hostname` under
//! `auto_host_sni`), and why a failed session failed, for the access log.

use crate::event::token::Id;
use crate::worker::Worker;

impl Worker {
    /// The SNI a connection for this stream to `host` sends, when it is not the cluster's
    /// fixed `sni`: under the cluster's `auto_sni`, the request's `host` (or
    /// `override_auto_sni_header`) without its port; under `auto_host_sni`, the endpoint's
    /// `hostname`. Envoy's precedence, in that order.
    pub(crate) fn connection_sni(&self, sid: Id, cluster: usize, host: Id) -> Option<Box<str>> {
        let state = &self.clusters[cluster];
        let tls = state.tls.as_ref()?;
        if let Some(auto) = &state.auto_sni {
            let head = self.streams.get(sid)?.retry.head.as_ref()?;
            let value = head.headers.get(auto.header.as_deref().unwrap_or("host"))?;
            let value = std::str::from_utf8(value).ok()?;
            let name = match value.strip_prefix('[') {
                // `[v6]:port` or `[v6]`.
                Some(rest) => rest.split(']').next()?,
                None => value.rsplit_once(':').map_or(value, |(name, _)| name),
            };
            return (!name.is_empty()).then(|| name.to_ascii_lowercase().into_boxed_str());
        }
        if tls.auto_host_sni {
            return state.hosts.get(host)?.host.spec.hostname.clone();
        }
        None
    }

    /// Keeps why a TLS session with the origin failed for the stream's log entry
    /// (`%UPSTREAM_TRANSPORT_FAILURE_REASON%`): rustls' reason in Envoy's frame, spaces made
    /// underscores as Envoy makes them.
    pub(crate) fn note_transport_failure(&mut self, id: Id, e: &std::io::Error) {
        if e.kind() != std::io::ErrorKind::InvalidData {
            return;
        }
        let Some(sid) = self.upstreams.get(id).and_then(|u| u.stream) else {
            return;
        };
        if let Some(log) = self.streams.get_mut(sid).and_then(|s| s.log.as_mut()) {
            let reason = format!(
                "TLS_error:|{}:TLS_error_end",
                e.to_string().replace(' ', "_")
            );
            log.transport_failure = Some(reason.into_boxed_str());
        }
    }
}
