//! The admin listener's bearer token. Binding to loopback is not enough on its own: anything
//! on the machine (a proxy, another service, a browser page) can reach loopback. The token
//! lives in a file only the node's user can read, `DATA/admin.token` unless configured,
//! created at first start.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use rand::RngCore;

/// Shortest token accepted from a file an operator wrote.
const MIN_LEN: usize = 32;

/// Reads the token from `path`, creating it (32 random bytes as lowercase hex, mode 0600)
/// when the file does not exist.
pub fn load_or_create(path: &Path) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let token = text.trim().to_string();
            if token.len() < MIN_LEN {
                return Err(std::io::Error::other(format!(
                    "{}: the admin token must be at least {MIN_LEN} characters",
                    path.display()
                )));
            }
            let mode = std::fs::metadata(path)?.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "the admin token file is readable by others; chmod 600 it");
            }
            Ok(token)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path),
        Err(e) => Err(e),
    }
}

/// A new token: hex, so it never starts with `-` (base64url did one time in 64, and
/// `chirpctl --admin-token <token>` then read it as a flag).
fn new_token() -> String {
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    secret.iter().map(|b| format!("{b:02x}")).collect()
}

fn create(path: &Path) -> std::io::Result<String> {
    let token = new_token();
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(format!("{token}\n").as_bytes())?;
    file.sync_all()?;
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    tracing::info!(path = %path.display(), "created the admin token");
    Ok(token)
}

/// Whether a request's `Authorization` header carries `token`, compared in constant time.
pub fn authorized(header: Option<&str>, token: &str) -> bool {
    let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
        return false;
    };
    let (a, b) = (given.trim().as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_tokens_are_hex_and_never_look_like_a_flag() {
        for _ in 0..1000 {
            let token = new_token();
            assert_eq!(token.len(), 64);
            assert!(token
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        }
    }

    #[test]
    fn the_token_file_is_made_private_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("admin.token");
        let made = load_or_create(&path).expect("create");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load_or_create(&path).expect("read"), made);
        assert!(authorized(Some(&format!("Bearer {made}")), &made));
        assert!(!authorized(Some("Bearer nope"), &made));
        assert!(!authorized(None, &made));
        std::fs::write(&path, "short").expect("write");
        assert!(load_or_create(&path).is_err());
    }
}
