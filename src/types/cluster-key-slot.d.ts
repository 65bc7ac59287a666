// cluster-key-slot (ioredis's own CRC16 of Redis Cluster) ships no types.
declare module 'cluster-key-slot' {
  /** The hash slot (0-16383) of a key, its {tag} honoured. */
  export default function calculateSlot(key: string | Buffer): number;
}
