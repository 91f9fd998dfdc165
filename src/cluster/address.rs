//! A cluster's address as users write it (`df://HOST:PORT`, Ballista's own spelling, or
//! `HOST:PORT`), and a connection check that fails in seconds with the address in the message.

use std::time::Duration;

/// Ballista's scheduler port when the address names none.
pub const DEFAULT_PORT: u16 = 50050;

/// How long a scheduler may take to accept a connection before a query gives up on it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterAddress {
    pub host: String,
    pub port: u16,
}

impl ClusterAddress {
    pub fn parse(text: &str) -> Result<ClusterAddress, String> {
        let bad = || {
            format!(
                "'{text}' is not a cluster address: write df://HOST:PORT, the address \
                 `augur scheduler` listens on (port {DEFAULT_PORT} unless it was given --listen)"
            )
        };
        let trimmed = text.trim();
        let rest = match trimmed.split_once("://") {
            Some(("df" | "http", rest)) => rest,
            Some(_) => return Err(bad()),
            None => trimmed,
        };
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || rest.contains('/') {
            return Err(bad());
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => {
                (host, port.parse::<u16>().map_err(|_| bad())?)
            }
            _ => (rest, DEFAULT_PORT),
        };
        if host.is_empty() || port == 0 {
            return Err(bad());
        }
        Ok(ClusterAddress {
            host: host.to_string(),
            port,
        })
    }

    /// The scheduler's gRPC endpoint.
    pub fn grpc_url(&self) -> String {
        format!("http://{}:{}", self.host, self.port)
    }

    /// Connect once, so that a scheduler that is down or unreachable is reported within
    /// seconds (a gRPC client would retry for much longer before failing).
    pub async fn check_reachable(&self) -> Result<(), String> {
        let target = (self.host.as_str(), self.port);
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(target)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(self.unreachable(&e.to_string())),
            Err(_) => {
                Err(self.unreachable(&format!("no answer within {} s", CONNECT_TIMEOUT.as_secs())))
            }
        }
    }

    pub fn unreachable(&self, why: &str) -> String {
        format!(
            "cannot reach the cluster's scheduler at {self}: {why}. Start it with `augur \
             scheduler --listen {}:{}`, or RESET augur.cluster to run queries in this process",
            self.host, self.port
        )
    }
}

/// `--cluster`: checked for form when given; whether a scheduler answers, by each query.
pub fn cluster_arg(text: &str) -> Result<String, String> {
    ClusterAddress::parse(text).map(|a| a.to_string())
}

impl std::fmt::Display for ClusterAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "df://{}:{}", self.host, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings() {
        let a = |h: &str, p| ClusterAddress {
            host: h.into(),
            port: p,
        };
        assert_eq!(
            ClusterAddress::parse("df://sched:50051"),
            Ok(a("sched", 50051))
        );
        assert_eq!(ClusterAddress::parse("df://sched"), Ok(a("sched", 50050)));
        assert_eq!(
            ClusterAddress::parse("10.0.0.1:7000"),
            Ok(a("10.0.0.1", 7000))
        );
        assert_eq!(ClusterAddress::parse("http://h:1/"), Ok(a("h", 1)));
        for bad in [
            "",
            "df://",
            "s3://b/k",
            "df://h:port",
            "df://h:0",
            "df://h/x",
        ] {
            let e = ClusterAddress::parse(bad).unwrap_err();
            assert!(e.contains("df://HOST:PORT"), "{bad}: {e}");
        }
    }

    #[tokio::test]
    async fn a_closed_port_is_named() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let e = ClusterAddress::parse(&format!("df://127.0.0.1:{port}"))
            .unwrap()
            .check_reachable()
            .await
            .unwrap_err();
        assert!(e.contains(&format!("df://127.0.0.1:{port}")), "{e}");
    }
}
