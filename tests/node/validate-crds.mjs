// Validates the chart's custom resources against the CRD models of their operators (npm @kubernetes-models/keda and
// @kubernetes-models/prometheus-operator, installed by scripts/ensure-node-tools.sh).
// Usage: node validate-crds.mjs NODE_MODULES DOCS.json  -> one JSON line per document: {kind, name, error|null}.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [nodeModules, docsFile] = process.argv.slice(2);
const models = {
  "keda.sh/v1alpha1/ScaledObject": "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject.js",
  "keda.sh/v1alpha1/TriggerAuthentication": "@kubernetes-models/keda/keda.sh/v1alpha1/TriggerAuthentication.js",
  "monitoring.coreos.com/v1/PrometheusRule":
    "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule.js",
};
for (const doc of JSON.parse(readFileSync(docsFile, "utf8"))) {
  const key = `${doc.apiVersion}/${doc.kind}`;
  let error = null;
  if (!(key in models)) {
    error = `no CRD model for ${key}`;
  } else {
    const module = await import(pathToFileURL(join(nodeModules, models[key])).href);
    try {
      new module[doc.kind](doc).validate();
    } catch (e) {
      error = e.message;
    }
  }
  console.log(JSON.stringify({ kind: doc.kind, name: doc.metadata?.name ?? null, error }));
}
