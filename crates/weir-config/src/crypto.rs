//! The crypto library weir's TLS stands on, chosen by a cargo feature: aws-lc-rs (the default:
//! post-quantum key exchange, FIPS-capable) or ring (`--no-default-features --features ring`).
//! Everything else names `crypto::rustls_provider` (rustls' provider module) and `crypto::lib`
//! (the library itself: digests, AEAD, random bytes), whose APIs are the same in both.

#[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
compile_error!("weir's TLS needs a crypto provider: the `aws-lc-rs` (default) or `ring` feature");

#[cfg(feature = "aws-lc-rs")]
pub(crate) use aws_lc_rs as lib;
#[cfg(feature = "aws-lc-rs")]
pub(crate) use rustls::crypto::aws_lc_rs as rustls_provider;

#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
pub(crate) use ring as lib;
#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
pub(crate) use rustls::crypto::ring as rustls_provider;

/// The provider with its default suites and groups.
pub(crate) fn default_provider() -> rustls::crypto::CryptoProvider {
    // rustls marks ring's provider deprecated for lacking post-quantum key exchange: that is
    // the trade the `ring` feature makes, on purpose.
    #[allow(deprecated)]
    rustls_provider::default_provider()
}
