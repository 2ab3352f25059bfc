//! The walk over vibration and OPC UA devices.

use super::spanned::*;
use super::Loader;
use super::*;
use crate::config::validate::*;
use toml::de::DeValue;
use toml::Spanned;

impl<'t> Loader<'t> {
    pub(in crate::config) fn vibration(
        &mut self,
        item: &Spanned<DeValue<'t>>,
        component: &str,
    ) -> Option<DeviceConfig> {
        let points_value = item
            .get_ref()
            .as_table()
            .and_then(|t| t.get("points"))
            .cloned();
        let opcua_value = item
            .get_ref()
            .as_table()
            .and_then(|t| t.get("opcua"))
            .cloned();
        let own = without_keys(item, &["type", "points", "opcua"]);
        let has_opcua = opcua_value.is_some();
        let device = self
            .component::<VibrationConfig>(&own, component, |d| validate_vibration(d, has_opcua));
        let opcua = match &opcua_value {
            Some(v) => self.waveform_opcua(v, component).map(Some),
            None => Some(None),
        };
        let points = self.named_points::<VibrationPointConfig>(
            points_value.as_ref(),
            component,
            |p| &p.name,
            |p| {
                let mut out = Vec::new();
                check_topic_name("name", "point name", &p.name, &mut out);
                out
            },
        );
        let (mut device, (items, points, mut ok), opcua) = (device?, points?, opcua?);
        device.opcua = opcua;
        for (index, p, alarms) in points {
            let item = &items[index];
            let point_component = format!("{component} / {}", component_name("point", item, index));
            let needs = feature_needs(&device, p.feature);
            if let Some(message) = needs {
                self.report(key_span(item, &["feature"]), &point_component, message);
                ok = false;
            }
            device.points.push(PointConfig {
                unit: p
                    .unit
                    .clone()
                    .unwrap_or_else(|| p.feature.unit().to_string()),
                name: p.name,
                address: PointAddress::Feature(p.feature),
                scale: 1.0,
                offset: 0.0,
                alarms,
                spc: p.spc,
                context: p.context,
            });
        }
        let value = points_value.unwrap_or_else(|| item.clone());
        ok &= self.check_point_references(&items, &device.points, component, &value);
        ok.then_some(DeviceConfig::Vibration(device))
    }

    /// `[devices.opcua]` of a vibration device: the connection and the array variable.
    fn waveform_opcua(
        &mut self,
        v: &Spanned<DeValue<'t>>,
        component: &str,
    ) -> Option<Box<OpcUaWaveformConfig>> {
        let waveform_component = format!("{component} / opcua");
        let connection = self.opcua_connection(v, &waveform_component);
        let waveform = self.component::<OpcUaWaveformConfig>(
            &without_keys(v, OpcUaConnection::KEYS),
            &waveform_component,
            validate_opcua_waveform,
        );
        let mut w = waveform?;
        w.connection = connection?;
        Some(Box::new(w))
    }

    /// The connection keys of an OPC UA table, checked on their own.
    pub(in crate::config) fn opcua_connection(
        &mut self,
        table: &Spanned<DeValue<'t>>,
        component: &str,
    ) -> Option<OpcUaConnection> {
        let others: Vec<String> = table
            .get_ref()
            .as_table()
            .map(|t| {
                t.iter()
                    .map(|(k, _)| k.get_ref().to_string())
                    .filter(|k| !OpcUaConnection::KEYS.contains(&k.as_str()))
                    .collect()
            })
            .unwrap_or_default();
        let others: Vec<&str> = others.iter().map(String::as_str).collect();
        let only = without_keys(table, &others);
        self.component::<OpcUaConnection>(&only, component, validate_opcua_connection)
    }

    pub(in crate::config) fn opcua(
        &mut self,
        item: &Spanned<DeValue<'t>>,
        component: &str,
    ) -> Option<DeviceConfig> {
        let points_value = item
            .get_ref()
            .as_table()
            .and_then(|t| t.get("points"))
            .cloned();
        let own = without_keys(item, &["type", "points"]);
        let connection = self.opcua_connection(&own, component);
        let device = self.component::<OpcUaConfig>(
            &without_keys(&own, OpcUaConnection::KEYS),
            component,
            validate_opcua,
        );
        let points = self.named_points::<OpcUaPointConfig>(
            points_value.as_ref(),
            component,
            |p| &p.name,
            validate_opcua_point,
        );
        let (mut device, (items, points, mut ok), connection) = (device?, points?, connection?);
        device.connection = connection;
        for (_, p, alarms) in points {
            device.points.push(PointConfig {
                name: p.name,
                address: PointAddress::Node(OpcUaNodeConfig {
                    node: p.node,
                    sampling_interval_ms: p.sampling_interval_ms,
                    deadband: p.deadband,
                }),
                scale: p.scale,
                offset: p.offset,
                unit: p.unit,
                alarms,
                spc: p.spc,
                context: p.context,
            });
        }
        let value = points_value.unwrap_or_else(|| item.clone());
        ok &= self.check_point_references(&items, &device.points, component, &value);
        ok.then_some(DeviceConfig::OpcUa(device))
    }
}

/// What a feature needs of its device that it lacks, if anything.
fn feature_needs(device: &VibrationConfig, feature: VibrationFeature) -> Option<String> {
    match feature {
        VibrationFeature::BandRms(n) if n >= device.bands_hz.len() => Some(format!(
            "band_rms:{n} needs at least {} entries in bands_hz",
            n + 1
        )),
        VibrationFeature::Harmonic(_) if device.rpm.is_none() => {
            Some("harmonics need `rpm`".to_string())
        }
        VibrationFeature::OuterRaceScore
        | VibrationFeature::InnerRaceScore
        | VibrationFeature::BallScore
        | VibrationFeature::CageScore
        | VibrationFeature::BearingVerdict
            if device.rpm.is_none() || device.bearing.is_none() =>
        {
            Some("bearing features need `rpm` and `bearing`".to_string())
        }
        _ => None,
    }
}
