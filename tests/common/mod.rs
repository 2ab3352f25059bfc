//! Real peers for the integration tests: a mosquitto broker and pymodbus servers, each started
//! on a free loopback port and killed when dropped, plus an MQTT observer.
//!
//! The peers must be installed (`./tests/run.sh` does it); a missing peer fails the test with
//! instructions rather than skipping it.

#![allow(
    dead_code,
    unused_imports,
    reason = "each test binary uses a different part of the harness"
)]

mod browser;
mod fixtures;
mod gateway;
mod http;
mod modbus;
mod mosquitto;
mod net;
mod observer;
mod opcua;
mod peer;
mod rabbitmq;
mod sparkplug;
mod state;

pub use browser::*;
pub use fixtures::*;
pub use gateway::*;
pub use http::*;
pub use modbus::*;
pub use mosquitto::*;
pub use net::*;
pub use observer::*;
pub use opcua::*;
pub use peer::*;
pub use rabbitmq::*;
pub use sparkplug::*;
pub use state::*;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
