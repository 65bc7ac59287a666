/**
 * RBM RichCard (spec §2.5): a standalone card or a carousel of 2-10 cards, and
 * the file references (uploaded file, URL) that card media and plain file
 * messages share.
 */
import { z } from 'zod';
import { expected, oneOf, rbmEnum, strictObject } from './common.ts';
import { rbmLimits } from './rbm-limits.ts';
import { httpUrl, suggestion } from './suggestion.ts';

const FILE = 'a file name from files.create like "files/abc123"';
const rbmFileName = z.string({ error: expected(FILE) }).regex(/^files\/\S+$/, { error: expected(FILE) });

/** A file uploaded beforehand with files.create, by the names it returned. */
export const uploadedRbmFile = strictObject({ fileName: rbmFileName, thumbnailName: rbmFileName.optional() });

/** A file RBM fetches (and caches) from a public URL. */
export const contentInfo = strictObject({
  fileUrl: httpUrl,
  thumbnailUrl: httpUrl.optional(),
  /** Bypasses RBM's cache and slows delivery: best left false. */
  forceRefresh: z.boolean().optional(),
});

/** Messages once named files with a bare `fileName`; RBM deprecated it. */
export const DEPRECATED_FILE_NAME = 'fileName is deprecated: use uploadedRbmFile { fileName, thumbnailName } instead';

export const mediaHeight = rbmEnum(['SHORT', 'MEDIUM', 'TALL']);

const media = strictObject(
  {
    /** Required on vertical and carousel cards, ignored on horizontal ones (checked by the card). */
    height: mediaHeight.optional(),
    uploadedRbmFile: uploadedRbmFile.optional(),
    contentInfo: contentInfo.optional(),
  },
  { fileName: DEPRECATED_FILE_NAME },
).check(oneOf(['uploadedRbmFile', 'contentInfo']));

export const cardContent = strictObject({
  title: z.string().max(rbmLimits.cardTitleChars).optional(),
  description: z.string().max(rbmLimits.cardDescriptionChars).optional(),
  media: media.optional(),
  suggestions: z.array(suggestion).max(rbmLimits.cardSuggestions).optional(),
}).check((payload) => {
  const { media: m, title, description } = payload.value;
  if (m !== undefined || title || description) return;
  payload.issues.push({
    code: 'custom',
    input: payload.value,
    path: [],
    message: 'expected at least one of media, title, description, got none',
  });
});

type CardContent = z.output<typeof cardContent>;
type Issues = { issues: z.core.$ZodRawIssue[] };

/** Height rules depend on the card around the media, so they are checked there. */
function checkHeight(payload: Issues, content: CardContent, path: (string | number)[], where: string, small = false): void {
  if (content.media === undefined) return;
  const height = content.media.height;
  if (height === undefined) {
    payload.issues.push({ code: 'custom', input: undefined, path, message: `required: expected SHORT, MEDIUM or TALL for ${where}` });
  } else if (small && height === 'TALL') {
    payload.issues.push({ code: 'custom', input: height, path, message: 'expected SHORT or MEDIUM in a SMALL carousel, got TALL' });
  }
}

export const standaloneCard = strictObject({
  cardOrientation: rbmEnum(['HORIZONTAL', 'VERTICAL']),
  thumbnailImageAlignment: rbmEnum(['LEFT', 'RIGHT']).optional(),
  cardContent,
}).check((payload) => {
  const card = payload.value;
  if (card.thumbnailImageAlignment !== undefined && card.cardOrientation !== 'HORIZONTAL') {
    payload.issues.push({
      code: 'custom',
      input: card.thumbnailImageAlignment,
      path: ['thumbnailImageAlignment'],
      message: `expected only with cardOrientation HORIZONTAL, got cardOrientation ${card.cardOrientation}`,
    });
  }
  if (card.cardOrientation === 'VERTICAL') checkHeight(payload, card.cardContent, ['cardContent', 'media', 'height'], 'a VERTICAL card');
});

export const carouselCard = strictObject({
  cardWidth: rbmEnum(['SMALL', 'MEDIUM']),
  cardContents: z.array(cardContent).min(rbmLimits.carouselMinCards).max(rbmLimits.carouselMaxCards),
}).check((payload) => {
  const { cardWidth, cardContents } = payload.value;
  cardContents.forEach((content, i) => {
    checkHeight(payload, content, ['cardContents', i, 'media', 'height'], 'a carousel card', cardWidth === 'SMALL');
  });
});

export const richCard = strictObject({
  standaloneCard: standaloneCard.optional(),
  carouselCard: carouselCard.optional(),
}).check(oneOf(['standaloneCard', 'carouselCard']));

export type RichCard = z.output<typeof richCard>;
