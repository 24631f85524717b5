//! IP prefixes (`addr/len`) for traffic selectors, policies and routes.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::{Error, Result};

/// An IPv4 or IPv6 prefix. Host bits are cleared on construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpCidr {
    addr: IpAddr,
    prefix_len: u8,
}

impl IpCidr {
    /// A prefix; `prefix_len` must be at most 32 (IPv4) or 128 (IPv6).
    pub fn new(addr: IpAddr, prefix_len: u8) -> Result<IpCidr> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix_len > max {
            return Err(Error::Malformed);
        }
        let addr = match addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask32(prefix_len))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask128(prefix_len))),
        };
        Ok(IpCidr { addr, prefix_len })
    }
    /// A host prefix (/32 or /128).
    pub fn host(addr: IpAddr) -> IpCidr {
        IpCidr { addr, prefix_len: if addr.is_ipv4() { 32 } else { 128 } }
    }
    pub fn addr(&self) -> IpAddr {
        self.addr
    }
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }
    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }
    pub fn contains(&self, a: IpAddr) -> bool {
        match (self.addr, a) {
            (IpAddr::V4(n), IpAddr::V4(a)) => (u32::from(n) ^ u32::from(a)) & mask32(self.prefix_len) == 0,
            (IpAddr::V6(n), IpAddr::V6(a)) => (u128::from(n) ^ u128::from(a)) & mask128(self.prefix_len) == 0,
            _ => false,
        }
    }
}

fn mask32(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len as u32)
    }
}

fn mask128(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - len as u32)
    }
}

impl core::fmt::Display for IpCidr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl core::str::FromStr for IpCidr {
    type Err = Error;
    /// Parses `addr/len`, or a bare address as a host prefix.
    fn from_str(s: &str) -> Result<IpCidr> {
        match s.split_once('/') {
            Some((a, l)) => {
                let addr: IpAddr = a.parse().map_err(|_| Error::Malformed)?;
                let len: u8 = l.parse().map_err(|_| Error::Malformed)?;
                IpCidr::new(addr, len)
            }
            None => Ok(IpCidr::host(s.parse().map_err(|_| Error::Malformed)?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_contains() {
        let c: IpCidr = "10.1.2.3/16".parse().unwrap();
        assert_eq!(c.addr(), "10.1.0.0".parse::<IpAddr>().unwrap());
        assert!(c.contains("10.1.255.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.0".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        let all: IpCidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("255.255.255.255".parse().unwrap()));
        let v6: IpCidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!v6.contains("2001:db9::".parse().unwrap()));
        assert_eq!("192.0.2.7".parse::<IpCidr>().unwrap().prefix_len(), 32);
        assert_eq!(std::format!("{}", v6), "2001:db8::/32");
    }

    #[test]
    fn rejects_bad_prefixes() {
        for s in ["10.0.0.0/33", "::/129", "10.0.0/8", "10.0.0.0/x", ""] {
            assert!(s.parse::<IpCidr>().is_err(), "{s}");
        }
    }
}
