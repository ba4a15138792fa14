import { texts } from './state.js'

// The widget's own UI texts. Titles, questions and choices come localized from the server.
// One "|"-separated string per language, in the order of the indexes below.
export const CLOSE = 0,
  NEXT = 1,
  SUBMIT = 2,
  THANKS = 3,
  REQUIRED = 4,
  OTHER = 5,
  SPECIFY = 6,
  YES = 7,
  NO = 8,
  NPS_LOW = 9,
  NPS_HIGH = 10,
  CSAT_LOW = 11,
  CSAT_HIGH = 12,
  MESSAGES = 13,
  UNREAD = 14

const TEXTS = {
  en: 'Close|Next|Submit|Thank you!|Required|Other|Please specify|Yes|No|Not likely|Very likely|Very dissatisfied|Very satisfied|Messages|unread',
  fr: 'Fermer|Suivant|Envoyer|Merci !|Obligatoire|Autre|Précisez|Oui|Non|Peu probable|Très probable|Très insatisfait|Très satisfait|Messages|non lus',
  de: 'Schließen|Weiter|Senden|Danke!|Pflichtfeld|Andere|Bitte angeben|Ja|Nein|Unwahrscheinlich|Sehr wahrscheinlich|Sehr unzufrieden|Sehr zufrieden|Nachrichten|ungelesen',
  es: 'Cerrar|Siguiente|Enviar|¡Gracias!|Obligatorio|Otro|Especifica|Sí|No|Poco probable|Muy probable|Muy insatisfecho|Muy satisfecho|Mensajes|sin leer',
  pt: 'Fechar|Próximo|Enviar|Obrigado!|Obrigatório|Outro|Especifique|Sim|Não|Pouco provável|Muito provável|Muito insatisfeito|Muito satisfeito|Mensagens|não lidas',
  ar: 'إغلاق|التالي|إرسال|شكرًا لك!|مطلوب|أخرى|يرجى التحديد|نعم|لا|غير محتمل|محتمل جدًا|غير راضٍ إطلاقًا|راضٍ جدًا|الرسائل|غير مقروءة',
}

// Texts for a locale such as "pt-BR": the host page's (init({texts})), the built-in ones, English.
export const uiTexts = (locale) => {
  const l = String(locale).slice(0, 2).toLowerCase()
  return (texts[locale] || texts[l] || TEXTS[l] || TEXTS.en).split('|')
}

// Right-to-left scripts get dir="rtl".
export const dir = (locale) => (/^(ar|he|fa|ur)\b/i.test(locale) ? 'rtl' : 'ltr')
