//! AUTH-10, AUTH-11: single sign-on over HTTP against real counterparts — host-app JWTs minted by
//! the independent PyJWT library, with keys configured or served as a JWKS by a local server
//! that the SSRF guard's test allowlist lets through.

pub mod host_jwt;
mod jwks;
mod ldap;
mod oidc;
mod slapd;
