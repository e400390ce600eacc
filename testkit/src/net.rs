//! Network faults for cluster tests. [`Net::isolate`] moves the calling thread into a new
//! network namespace holding only loopback (every process and thread it starts from then on
//! is in it too; the rest of the test binary is not), where every 127.0.0.x address is
//! local. Nodes listening on addresses of their own can then be cut apart by nftables drop
//! rules on those addresses ([`Net::cut`]), which drop packets silently, as a real partition
//! does: connections hang and time out rather than being refused.
//!
//! Needs root (or CAP_NET_ADMIN and CAP_SYS_ADMIN), `ip` and `nft` (`scripts/setup-deps`
//! installs nftables); [`Net::isolate`] says why when they are missing, for the test to
//! run without network faults.

use std::net::IpAddr;
use std::process::Command;

/// The calling thread's own network namespace, with a table of drop rules.
pub struct Net {
    cuts: Vec<(IpAddr, IpAddr)>,
}

const TABLE: &str = "chirp_faults";

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn nft_path() -> &'static str {
    if std::path::Path::new("/usr/sbin/nft").is_file() {
        "/usr/sbin/nft"
    } else {
        "nft"
    }
}

fn ip_path() -> &'static str {
    if std::path::Path::new("/usr/sbin/ip").is_file() {
        "/usr/sbin/ip"
    } else {
        "ip"
    }
}

impl Net {
    /// Moves the calling thread into a new network namespace with loopback up and an empty
    /// drop table. Call it before starting anything that listens or connects.
    pub fn isolate() -> Result<Net, String> {
        // SAFETY: unshare(2) with CLONE_NEWNET changes only the calling thread's namespace.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            return Err(format!(
                "unshare(CLONE_NEWNET): {} (needs root)",
                std::io::Error::last_os_error()
            ));
        }
        run(ip_path(), &["link", "set", "lo", "up"])?;
        run(nft_path(), &["add", "table", "inet", TABLE])?;
        run(
            nft_path(),
            &[
                "add",
                "chain",
                "inet",
                TABLE,
                "out",
                "{ type filter hook output priority 0; policy accept; }",
            ],
        )?;
        Ok(Net { cuts: Vec::new() })
    }

    /// Drops every packet between `a` and `b`, both ways.
    pub fn cut(&mut self, a: IpAddr, b: IpAddr) -> Result<(), String> {
        for (from, to) in [(a, b), (b, a)] {
            let rule = format!("ip saddr {from} ip daddr {to} drop");
            let mut args = vec!["add", "rule", "inet", TABLE, "out"];
            args.extend(rule.split(' '));
            run(nft_path(), &args)?;
        }
        self.cuts.push((a, b));
        Ok(())
    }

    /// Drops every packet to or from `ip`, whoever sends it: for an address only one
    /// party uses (a node's own address of etcd), whose peers' source address is not known
    /// (a client connection leaves from 127.0.0.1 unless it binds another).
    pub fn cut_off(&mut self, ip: IpAddr) -> Result<(), String> {
        for rule in [format!("ip saddr {ip} drop"), format!("ip daddr {ip} drop")] {
            let mut args = vec!["add", "rule", "inet", TABLE, "out"];
            args.extend(rule.split(' '));
            run(nft_path(), &args)?;
        }
        self.cuts.push((ip, ip));
        Ok(())
    }

    /// Removes every cut.
    pub fn heal(&mut self) -> Result<(), String> {
        run(nft_path(), &["flush", "chain", "inet", TABLE, "out"])?;
        self.cuts.clear();
        Ok(())
    }

    /// The cuts in place (an address cut off from everyone is paired with itself).
    pub fn cuts(&self) -> &[(IpAddr, IpAddr)] {
        &self.cuts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{SocketAddr, TcpListener};
    use std::time::Duration;

    fn connect(from: IpAddr, to: SocketAddr) -> bool {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        socket.bind(&SocketAddr::new(from, 0).into()).expect("bind");
        socket
            .connect_timeout(&to.into(), Duration::from_millis(300))
            .is_ok()
    }

    /// A cut drops packets between two addresses (the connection times out), and only
    /// between them; healing restores it.
    #[test]
    fn a_cut_drops_traffic_between_two_addresses_until_healed() {
        std::thread::spawn(|| {
            let mut net = match Net::isolate() {
                Ok(net) => net,
                Err(why) => {
                    println!("skipping: {why}");
                    return;
                }
            };
            let (a, b, c): (IpAddr, IpAddr, IpAddr) = (
                [127, 0, 0, 2].into(),
                [127, 0, 0, 3].into(),
                [127, 0, 0, 4].into(),
            );
            let listener = TcpListener::bind((b, 0)).expect("listen");
            let to = listener.local_addr().expect("addr");
            assert!(connect(a, to), "before the cut");
            net.cut(a, b).expect("cut");
            assert!(!connect(a, to), "through the cut");
            assert!(connect(c, to), "from a third address");
            net.heal().expect("heal");
            assert!(connect(a, to), "after healing");
        })
        .join()
        .expect("the test thread");
    }
}
