// The JSON Schema that ships in the package (schema/holdfast.schema.json) is the single source of
// truth for the keys, their types, ranges and defaults; this module reads it and explains it.

import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import Ajv2020, { type ErrorObject, type ValidateFunction } from 'ajv/dist/2020';

/** From dist/src/config/ (compiled) up to the package root. */
export const SCHEMA_FILE = resolve(__dirname, '../../../schema/holdfast.schema.json');

export interface PropertySchema {
  type: 'integer' | 'string' | 'boolean' | 'object';
  description: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  enum?: readonly string[];
  pattern?: string;
  default?: unknown;
  /** Human wording of what `pattern` allows, for error messages. */
  'x-allowed'?: string;
}

interface ConfigSchema {
  properties: Record<string, PropertySchema>;
}

let loaded: { schema: ConfigSchema; validate: ValidateFunction } | undefined;

function load(): { schema: ConfigSchema; validate: ValidateFunction } {
  if (!loaded) {
    const schema = JSON.parse(readFileSync(SCHEMA_FILE, 'utf8')) as ConfigSchema;
    const ajv = new Ajv2020({ allErrors: true, strict: true });
    ajv.addKeyword('x-allowed');
    loaded = { schema, validate: ajv.compile(schema) };
  }
  return loaded;
}

/** Every settings key, in the schema's order ("$schema" is an editor hint, not a setting). */
export function settingKeys(): string[] {
  return Object.keys(load().schema.properties).filter((k) => k !== '$schema');
}

export function isSettingKey(key: string): boolean {
  return key !== '$schema' && Object.prototype.hasOwnProperty.call(load().schema.properties, key);
}

export function propertySchema(key: string): PropertySchema {
  const p = load().schema.properties[key];
  if (!p) throw new Error(`no such config key in the schema: ${key}`);
  return p;
}

export function defaultOf(key: string): unknown {
  return propertySchema(key).default;
}

/** What a key accepts, worded to follow "must be": "an integer >= 1", "true or false", ... */
export function describeAllowed(key: string): string {
  const p = propertySchema(key);
  switch (p.type) {
    case 'integer':
      if (p.minimum !== undefined && p.maximum !== undefined) return `an integer from ${p.minimum} to ${p.maximum}`;
      if (p.minimum !== undefined) return `an integer >= ${p.minimum}`;
      return 'an integer';
    case 'boolean':
      return 'true or false';
    case 'object':
      return 'an object of NAME: "value" strings';
    case 'string':
      if (p.enum) return `one of ${p.enum.map((v) => JSON.stringify(v)).join(', ')}`;
      if (p['x-allowed']) return p['x-allowed'];
      return p.minLength ? 'a non-empty string' : 'a string';
  }
}

/** Runs the schema over a settings object; [] when it is valid. */
export function schemaErrors(settings: Record<string, unknown>): ErrorObject[] {
  const { validate } = load();
  return validate(settings) ? [] : [...(validate.errors ?? [])];
}
