/**
 * RBM's documented limits on an AgentMessage (spec/rbm-api.md §2.7), in one
 * place so the schemas, the emulator and error texts agree on the numbers.
 */

export const rbmLimits = {
  /** JSON.stringify(message) in UTF-8 bytes ("250 KB"). */
  messageBytes: 250_000,
  /** Lengths are JS string lengths (UTF-16 units): never more lenient than RBM's characters. */
  textChars: 3072,
  suggestions: 11,
  cardSuggestions: 4,
  suggestionTextChars: 25,
  postbackDataChars: 2048,
  urlChars: 2048,
  cardTitleChars: 200,
  cardDescriptionChars: 2000,
  carouselMinCards: 2,
  carouselMaxCards: 10,
  calendarTitleChars: 100,
  calendarDescriptionChars: 500,
} as const;
