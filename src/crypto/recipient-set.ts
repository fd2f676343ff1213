// Who a backup is encrypted to: the age recipients, and how the manifest names them.
import type { AgeRecipient } from "./age-keys.ts";

export interface RecipientSet {
  /** What age encrypts to. */
  age: AgeRecipient[];
  /** Public description recorded in manifests: age1… strings, "scrypt" for a passphrase. */
  names: string[];
  passphrase: boolean;
}
