// The strongbox version: in manifests, in the agent handshake, and in --version.
export const VERSION = "0.1.0";
