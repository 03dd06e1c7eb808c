// Types of what the TypeScript tests import from brokers.mjs.
export declare function kafkaClusterId(): string;
export declare function javaHome(): string;
export declare function pulsarDist(): string;
export declare function registryUrl(): string;
export declare function registryJavaHome(): string;
export declare function serdesClasspath(): Promise<string>;
export declare function protocPath(): Promise<string>;
export declare function kafkaDist(): string;
